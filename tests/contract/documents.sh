#!/bin/sh
# The schema and the server agree on flow documents: every good document (examples/flows,
# tests/e2e/flows, tests/contract/good) passes both api/flow.schema.json and `flowd check`, every bad
# one (tests/contract/bad, one mistake each) fails both. A disagreement fails the test, naming the
# file and both verdicts. The schema sees the JSON only; flowd check also reads a NAME.lua beside
# NAME.json (its code). Needs Debian's python3-jsonschema (`make deps`).
# Usage: tests/contract/documents.sh [FLOWD]   (default build/flowd)
set -u
cd "$(dirname "$0")/../.."
FLOWD=${1:-build/flowd}
PYTHON=${PYTHON:-/usr/bin/python3}
SCHEMA=api/flow.schema.json
[ -x "$FLOWD" ] || { echo "contract: $FLOWD is not built (make)"; exit 1; }
"$PYTHON" -c 'import jsonschema' 2>/dev/null ||
    { echo "contract: $PYTHON has no jsonschema (make deps installs python3-jsonschema)"; exit 1; }

good=$(ls examples/flows/*.json tests/e2e/flows/*.json tests/contract/good/*.json 2>/dev/null)
bad=$(ls tests/contract/bad/*.json 2>/dev/null)
[ -n "$bad" ] || { echo "contract: no bad documents in tests/contract/bad"; exit 1; }

# The schema's verdict on every file at once: "FILE<TAB>ok" or "FILE<TAB>first problem".
verdicts=$(mktemp) || exit 1
trap 'rm -f "$verdicts"' EXIT
# shellcheck disable=SC2086
"$PYTHON" - "$SCHEMA" $good $bad >"$verdicts" <<'PY' || { echo "contract: the schema check did not run"; exit 1; }
import json, sys
import jsonschema
schema = json.load(open(sys.argv[1]))
cls = jsonschema.validators.validator_for(schema)
cls.check_schema(schema)
v = cls(schema)
for path in sys.argv[2:]:
    try:
        doc = json.load(open(path))
    except ValueError as e:
        print("%s\tnot JSON: %s" % (path, e))
        continue
    errors = sorted(v.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if not errors:
        print("%s\tok" % path)
    else:
        e = errors[0]
        where = "/" + "/".join(str(p) for p in e.absolute_path)
        more = " (and %d more)" % (len(errors) - 1) if len(errors) > 1 else ""
        print("%s\t%s: %s%s" % (path, where, e.message[:200].replace("\n", " "), more))
PY

fail=0 ngood=0 nbad=0
check() { # FILE WANT(pass|fail)
    s=$(awk -F '\t' -v f="$1" '$1 == f { print $2; exit }' "$verdicts")
    f=$("$FLOWD" check "$1" 2>&1)
    rc=$?
    [ "$s" = ok ] && sv=pass || sv=fail
    # a refusal lists problems ("FILE: 2 problems"); anything else (an error) is no verdict
    if [ $rc -eq 0 ]; then
        fv=pass
    elif [ $rc -eq 1 ] && printf '%s\n' "$f" | grep -Eq ': [0-9]+ problems?$'; then
        fv=fail
    else
        fv="error (exit $rc, no problem listed)"
    fi
    if [ "$sv" != "$2" ] || [ "$fv" != "$2" ]; then
        echo "contract: $1: should $2; schema: $sv ($s); flowd check: $fv"
        echo "$f" | sed 's/^/    /'
        fail=1
    fi
}
for f in $good; do check "$f" pass; ngood=$((ngood + 1)); done
for f in $bad; do check "$f" fail; nbad=$((nbad + 1)); done
if [ $fail -eq 0 ]; then
    echo "contract: $ngood good documents pass and $nbad bad ones fail, both $SCHEMA and $FLOWD check"
fi
exit $fail
