#!/bin/sh
# Writes bench settings for `make bench`: N patterns in a realistic mix
# (literal hosts, subdomain wildcards, Docker Hub images with tag globs, deny
# rules), then the three catch rules the images of pod-5.json reach.
#
#   gen-settings.sh N          N rules with one pattern each (default)
#   gen-settings.sh N rules    the same
#   gen-settings.sh N patterns one rule with the N patterns (no deny rules)
n=${1:-10}
shape=${2:-rules}
pattern() {
  case $(($1 % 5)) in
    0) echo "registry.corp.example/team-$1/**" ;;
    1) echo "ghcr.io/org-$1/*" ;;
    2) echo "*.corp$1.io/**" ;;
    3) echo "quay.io/bad-$1/**" ;;
    4) echo "docker.io/library/img$1:1.*" ;;
  esac
}
echo "rules:"
i=0
case $shape in
  rules)
    while [ $i -lt "$n" ]; do
      case $((i % 5)) in
        0) echo "- {name: team-$i, images: [\"$(pattern $i)\"], tags: {deny: [latest]}}" ;;
        1) echo "- {name: org-$i, images: [\"$(pattern $i)\"]}" ;;
        2) echo "- {name: sub-$i, images: [\"$(pattern $i)\"]}" ;;
        3) echo "- {name: deny-$i, images: [\"$(pattern $i)\"], action: deny, priority: 5}" ;;
        4) echo "- {name: tag-$i, images: [\"$(pattern $i)\"]}" ;;
      esac
      i=$((i + 1))
    done ;;
  patterns)
    echo "- name: allowed"
    echo "  tags: {deny: [latest]}"
    echo "  images:"
    while [ $i -lt "$n" ]; do
      echo "  - \"$(pattern $i)\""
      i=$((i + 1))
    done ;;
  *) echo "gen-settings.sh: shape must be rules or patterns, not $shape" >&2; exit 2 ;;
esac
echo "- {name: official, images: [\"docker.io/*\"]}"
echo "- {name: corp-io, images: [\"*.corp.io/**\"]}"
echo "- {name: quay, images: [\"quay.io/**\"]}"
