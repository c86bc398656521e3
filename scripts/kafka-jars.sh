#!/usr/bin/env bash
# Makes sure Apache Kafka's client and tool jars (versions pinned in compat/java/pom.xml)
# are in compat/.cache/java/jars and prints that directory. Downloads them once with
# Maven into compat/.cache/m2; later calls reuse them (a stamp holds the pom's hash).
#
#   java -cp "$(scripts/kafka-jars.sh)/*" org.apache.kafka.tools.TopicCommand ...
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$REPO/compat/.cache"
JARS="$CACHE/java/jars"
STAMP="$CACHE/java/jars.stamp"
POM="$REPO/compat/java/pom.xml"

jv="$(java -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2}')"
if [[ -z "$jv" || "${jv%%.*}" -lt 17 ]]; then
  echo "Kafka 4 tools need Java 17+, found '${jv}'" >&2
  exit 1
fi
h="$(sha256sum < "$POM" | cut -c1-32)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$h" ]]; then
  echo "$JARS"
  exit 0
fi
mkdir -p "$CACHE/java"
# One download at a time (the client suite and the compat matrix may both ask).
exec 9>"$CACHE/java/.lock"
flock 9
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$h" ]]; then
  echo "$JARS"
  exit 0
fi
echo "fetching Kafka jars (mvn dependency:copy-dependencies, repository $CACHE/m2)" >&2
rm -rf "$JARS" && mkdir -p "$JARS"
mvn -q -B -f "$POM" -Dmaven.repo.local="$CACHE/m2" \
  dependency:copy-dependencies -DoutputDirectory="$JARS" >&2
echo "$h" > "$STAMP"
echo "$JARS"
