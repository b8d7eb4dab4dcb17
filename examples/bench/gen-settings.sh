#!/bin/sh
# Writes settings with N rules (realistic mix: literal hosts, subdomain
# wildcards, official images, deny rules, tag rules) for `make bench`.
n=${1:-10}
echo "rules:"
i=0
while [ $i -lt $n ]; do
  case $((i % 5)) in
    0) echo "- {name: team-$i, images: [\"registry.corp.example/team-$i/**\"], tags: {deny: [latest]}}" ;;
    1) echo "- {name: org-$i, images: [\"ghcr.io/org-$i/*\"]}" ;;
    2) echo "- {name: sub-$i, images: [\"*.corp$i.io/**\"]}" ;;
    3) echo "- {name: deny-$i, images: [\"quay.io/bad-$i/**\"], action: deny, priority: 5}" ;;
    4) echo "- {name: tag-$i, images: [\"docker.io/library/img$i:1.*\"]}" ;;
  esac
  i=$((i + 1))
done
echo "- {name: official, images: [\"docker.io/*\"]}"
echo "- {name: corp-io, images: [\"*.corp.io/**\"]}"
echo "- {name: quay, images: [\"quay.io/**\"]}"
