#!/usr/bin/env python3
"""Validates Kubernetes objects against the API schemas bundled in the
kubernetes-validate package (installed by scripts/deps.sh into .venv).

    .venv/bin/python scripts/kube-validate.py --version 1.35 [--no-schema KIND]... FILE|-

Every document of every file is checked with strict=True (unknown fields are
errors). A kind without a bundled schema (CRDs, config files) is a failure
unless it is named with --no-schema: the caller checks those itself. The
schemas carry types, required fields and allowed fields only; enums and
ranges are the caller's to check. Prints one line per object; exits 1 when
any object fails, 2 on a usage error.
"""
import argparse
import importlib.metadata
import sys

import kubernetes_validate as kv
import yaml


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", required=True, help="Kubernetes version, e.g. 1.35")
    parser.add_argument("--no-schema", action="append", default=[], metavar="KIND")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    failed = checked = 0
    for name in args.files:
        text = sys.stdin.read() if name == "-" else open(name, encoding="utf-8").read()
        for doc in yaml.safe_load_all(text):
            if doc is None:
                continue
            kind = doc.get("kind", "?")
            what = f"{doc.get('apiVersion', '?')} {kind} {doc.get('metadata', {}).get('name', '')}"
            try:
                kv.validate(doc, args.version, strict=True)
                print(f"ok {what}")
                checked += 1
            except kv.SchemaNotFoundError as e:
                if kind in args.no_schema:
                    print(f"no-schema {what} (checked by the caller)")
                else:
                    print(f"FAIL {what}: no schema: {e}")
                    failed += 1
            except kv.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                print(f"FAIL {what}: {path}: {e.message}")
                failed += 1
    print(f"kubernetes-validate {importlib.metadata.version('kubernetes-validate')} "
          f"against {args.version}: {checked} valid, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    try:
        main()
    except kv.utils.VersionNotSupportedError as e:  # type: ignore[attr-defined]
        print(f"kube-validate: {e}", file=sys.stderr)
        sys.exit(2)
