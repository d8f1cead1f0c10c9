#!/usr/bin/env bash
# Produces each of the seven provisioning failures against a real `scimd serve` and runs the
# doctor on each: the examples in docs/troubleshooting.md come from this script.
# Usage: tools/doctor-examples.sh [path/to/scimd]   (listens on 127.0.0.1:18095)
set -u
B=${1:-target/debug/scimd}
D=$(mktemp -d)/data
export SCIMD_OPERATOR_TOKEN=doc-operator-token-0123456789
$B serve --listen 127.0.0.1:18095 --data-dir $D > serve.log 2>&1 &
PID=$!
sleep 1
A="http://127.0.0.1:18095/admin/api/v1"
S="http://127.0.0.1:18095/scim/v2"
OP="Authorization: Bearer $SCIMD_OPERATOR_TOKEN"
J="Content-Type: application/json"
tenant() { curl -s -H "$OP" -H "$J" -d "{\"name\":\"$1\"}" $A/tenants | python3 -c 'import sys,json;print(json.load(sys.stdin)["id"])'; }
token() { curl -s -H "$OP" -H "$J" -d "${2:-{\}}" $A/tenants/$1/tokens | python3 -c 'import sys,json;print(json.load(sys.stdin)["token"])'; }
user() { curl -s -o /dev/null -w "%{http_code}\n" -H "Authorization: Bearer $1" -H "User-Agent: $2" -H "Content-Type: application/scim+json" -d "$3" $S/Users; }
OKTA="Okta SCIM Client 1.0.0"
ENTRA="Azure Active Directory SCIM Client"

# 2: wrong URL (Entra, missing /v2)
T=$(tenant contoso); K=$(token $T)
curl -s -o /dev/null -H "Authorization: Bearer $K" -H "User-Agent: $ENTRA" "http://127.0.0.1:18095/scim/Users?filter=userName+eq+%22x%22"
curl -s -o /dev/null -H "Authorization: Bearer $K" -H "User-Agent: $ENTRA" "http://127.0.0.1:18095/scim/Users?filter=userName+eq+%22y%22"

# 3: expired token (Okta)
T=$(tenant globex); AT=$(python3 -c 'import datetime;print((datetime.datetime.utcnow()+datetime.timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ"))')
K=$(token $T "{\"expires_at\":\"$AT\"}")
user $K "$OKTA" '{"userName":"early@globex.com"}'
sleep 3
user $K "$OKTA" '{"userName":"late@globex.com"}'

# 4: mappings (Okta)
T=$(tenant initech); K=$(token $T)
M=$(curl -s -H "$OP" $A/tenants/$T/mappings | python3 -c 'import sys,json;print(json.load(sys.stdin)["mappings"][0]["id"])')
P=$(curl -s -H "$OP" $A/tenants/$T/profiles | python3 -c 'import sys,json;print(json.load(sys.stdin)["profiles"][0]["id"])')
curl -s -o /dev/null -X PATCH -H "$OP" -H "$J" -d '{"enabled":false}' $A/tenants/$T/mappings/$M
curl -s -o /dev/null -H "$OP" -H "$J" -d "{\"name\":\"Finance\",\"priority\":10,\"filter\":\"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq \\\"Finance\\\"\",\"profile_id\":\"$P\"}" $A/tenants/$T/mappings
user $K "$OKTA" '{"userName":"peter@initech.com","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Sales"}}'

# 5: profile full (Entra)
T=$(tenant hooli); K=$(token $T)
P=$(curl -s -H "$OP" $A/tenants/$T/profiles | python3 -c 'import sys,json;print(json.load(sys.stdin)["profiles"][0]["id"])')
curl -s -o /dev/null -X PATCH -H "$OP" -H "$J" -d '{"max_users":1}' $A/tenants/$T/profiles/$P
user $K "$ENTRA" '{"userName":"gavin@hooli.com"}'
user $K "$ENTRA" '{"userName":"richard@hooli.com"}'

# 6: email elsewhere (Okta)
T1=$(tenant umbrella); K1=$(token $T1); T=$(tenant wayne); K=$(token $T)
user $K1 "$OKTA" '{"userName":"bruce","emails":[{"value":"bruce@wayne.com","primary":true}]}'
user $K "$OKTA" '{"userName":"bruce.wayne","emails":[{"value":"bruce@wayne.com","primary":true}]}'

sleep 1
for t in contoso globex initech hooli wayne; do
  echo "=== $t"; $B doctor --data-dir $D --tenant $t; echo "exit $?"
done
echo "=== default --user"; $B doctor --data-dir $D --tenant default --user alice@corp.com; echo "exit $?"
# 7: storage (Okta)
T=$(tenant stark); K=$(token $T)
R=$(curl -s -H "$OP" $A/regions | python3 -c 'import sys,json;print(json.load(sys.stdin)["regions"][0]["id"])')
curl -s -o /dev/null -X PATCH -H "$OP" -H "$J" -d '{"health":"down"}' $A/regions/$R
user $K "$OKTA" '{"userName":"tony@stark.com"}'
curl -s -o /dev/null -X PATCH -H "$OP" -H "$J" -d '{"health":"down"}' $A/regions/$R

sleep 1
echo "=== stark"; $B doctor --data-dir $D --tenant stark; echo "exit $?"
echo "=== healthy"; T=$(tenant healthy); K=$(token $T)
curl -s -o /dev/null -X PATCH -H "$OP" -H "$J" -d '{"health":"healthy"}' $A/regions/$R
user $K "$OKTA" '{"userName":"ok@healthy.com"}'
sleep 1; $B doctor --data-dir $D --tenant healthy; echo "exit $?"
$B doctor --data-dir $D --tenant healthy --format json | head -c 600; echo
kill -TERM $PID; wait $PID 2>/dev/null
