#!/usr/bin/env python3
"""REST client of compat/ecosystem/schema-registry/run.sh (standard library only).

    sr.py register BASE          phase 1 writes; prints a JSON summary
    sr.py dump BASE OUT.json     reads everything back, checks it against what was registered,
                                 writes a canonical JSON of it (compared across the restart)
    sr.py dump-final BASE OUT    the same, with the version registered by after-restart
    sr.py after-restart BASE     phase 2 writes on the restarted registry; prints a JSON summary

BASE is the registry's root, e.g. http://127.0.0.1:8080. The writes go through the
Confluent-compatible API (/apis/ccompat/v7), the read-back uses it and Apicurio's own v3 API.
Exit 0 when every answer is the expected one; otherwise a message on stderr and exit 1.
"""
import json
import sys
import urllib.error
import urllib.request

CT = "application/vnd.schemaregistry.v1+json"


def avro(fields):
    return json.dumps({"type": "record", "name": "Order", "namespace": "brook.test", "fields": fields})


ORDER_V1 = avro([{"name": "id", "type": "long"}, {"name": "amount", "type": "double"}])
# BACKWARD-compatible: a new field with a default
ORDER_V2 = avro([{"name": "id", "type": "long"}, {"name": "amount", "type": "double"},
                 {"name": "currency", "type": "string", "default": "EUR"}])
# NOT backward-compatible with v2: a new field without a default (must be refused with 409)
ORDER_BAD = avro([{"name": "id", "type": "long"}, {"name": "amount", "type": "double"},
                  {"name": "currency", "type": "string", "default": "EUR"},
                  {"name": "customer", "type": "string"}])
# registered after the restart: compatible again (a nullable field with a default)
ORDER_V3 = avro([{"name": "id", "type": "long"}, {"name": "amount", "type": "double"},
                 {"name": "currency", "type": "string", "default": "EUR"},
                 {"name": "note", "type": ["null", "string"], "default": None}])
CUSTOMER_JSON = json.dumps({
    "$schema": "http://json-schema.org/draft-07/schema#", "title": "Customer", "type": "object",
    "properties": {"name": {"type": "string"}, "email": {"type": "string"}}, "required": ["name"]})
PAYMENT_PROTO = ('syntax = "proto3";\npackage brook.test;\n\n'
                 'message Payment {\n  string id = 1;\n  int64 cents = 2;\n  string currency = 3;\n}\n')

# subject -> [(schemaType, schema)] in version order, as registered before the restart
PHASE1 = {
    "orders-value": [("AVRO", ORDER_V1), ("AVRO", ORDER_V2)],
    "customers-value": [("JSON", CUSTOMER_JSON)],
    "payments-value": [("PROTOBUF", PAYMENT_PROTO)],
}


class Fail(Exception):
    pass


def call(method, url, body=None, ok=(200,)):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": CT, "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            code, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        code, text = e.code, e.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as e:
        raise Fail(f"{method} {url}: {e}")
    if code not in ok:
        raise Fail(f"{method} {url}: HTTP {code} {text[:300]}")
    return code, (json.loads(text) if text.strip() else None)


def same_schema(kind, a, b):
    if kind in ("AVRO", "JSON"):
        return json.loads(a) == json.loads(b)
    return a.strip() == b.strip()


def register(base, subject, kind, schema):
    body = {"schema": schema}
    if kind != "AVRO":
        body["schemaType"] = kind
    _, r = call("POST", f"{base}/apis/ccompat/v7/subjects/{subject}/versions", body)
    if not isinstance(r, dict) or not isinstance(r.get("id"), int):
        raise Fail(f"register {subject}: unexpected answer {r}")
    return r["id"]


def refused(base, subject, schema):
    code, r = call("POST", f"{base}/apis/ccompat/v7/subjects/{subject}/versions", {"schema": schema}, ok=(409,))
    return f"HTTP {code}: {(r or {}).get('message', '')[:160]}"


def cmd_register(base):
    cc = f"{base}/apis/ccompat/v7"
    _, r = call("PUT", f"{cc}/config/orders-value", {"compatibility": "BACKWARD"})
    if (r or {}).get("compatibility") != "BACKWARD":
        raise Fail(f"PUT config/orders-value: {r}")
    ids = {}
    ids["orders-value/1"] = register(base, "orders-value", "AVRO", ORDER_V1)
    ids["orders-value/2"] = register(base, "orders-value", "AVRO", ORDER_V2)
    rejected = refused(base, "orders-value", ORDER_BAD)
    ids["customers-value/1"] = register(base, "customers-value", "JSON", CUSTOMER_JSON)
    ids["payments-value/1"] = register(base, "payments-value", "PROTOBUF", PAYMENT_PROTO)
    if len(set(ids.values())) != len(ids):
        raise Fail(f"schema ids not distinct: {ids}")
    # registering an existing schema again returns its id and makes no new version
    again = register(base, "orders-value", "AVRO", ORDER_V1)
    if again != ids["orders-value/1"]:
        raise Fail(f"re-registering orders-value v1 gave id {again}, expected {ids['orders-value/1']}")
    print(json.dumps({"ids": ids, "incompatible_refused": rejected}))


def strip_times(obj):
    """createdOn/modifiedOn are not in Apicurio's KafkaSQL journal messages: a replay after a
    restart stamps them anew, so they are left out of the comparison."""
    if isinstance(obj, dict):
        return {k: strip_times(v) for k, v in obj.items() if k not in ("createdOn", "modifiedOn")}
    if isinstance(obj, list):
        return [strip_times(v) for v in obj]
    return obj


def cmd_dump(base, out, expect_extra=False):
    cc = f"{base}/apis/ccompat/v7"
    v3 = f"{base}/apis/registry/v3"
    state = {}
    _, subjects = call("GET", f"{cc}/subjects")
    state["subjects"] = sorted(subjects)
    expected = {s: list(v) for s, v in PHASE1.items()}
    if expect_extra:
        expected["orders-value"].append(("AVRO", ORDER_V3))
    if state["subjects"] != sorted(expected):
        raise Fail(f"subjects {state['subjects']}, expected {sorted(expected)}")
    state["versions"] = {}
    state["by_id"] = {}
    for s in sorted(expected):
        _, versions = call("GET", f"{cc}/subjects/{s}/versions")
        if versions != list(range(1, len(expected[s]) + 1)):
            raise Fail(f"{s}: versions {versions}, expected 1..{len(expected[s])}")
        for v, (kind, schema) in zip(versions, expected[s]):
            _, r = call("GET", f"{cc}/subjects/{s}/versions/{v}")
            got_kind = r.get("schemaType", "AVRO")
            if r.get("subject") != s or r.get("version") != v or got_kind != kind \
                    or not same_schema(kind, r.get("schema", "{}"), schema):
                raise Fail(f"{s} v{v}: read back {json.dumps(r)[:300]}")
            state["versions"][f"{s}/{v}"] = r
            _, by_id = call("GET", f"{cc}/schemas/ids/{r['id']}")
            if by_id.get("schemaType", "AVRO") != kind or not same_schema(kind, by_id.get("schema", "{}"), schema):
                raise Fail(f"schemas/ids/{r['id']}: {json.dumps(by_id)[:300]}")
            state["by_id"][str(r["id"])] = by_id
        _, latest = call("GET", f"{cc}/subjects/{s}/versions/latest")
        if latest.get("version") != len(expected[s]):
            raise Fail(f"{s} latest is version {latest.get('version')}, expected {len(expected[s])}")
    _, conf = call("GET", f"{cc}/config/orders-value")
    if conf.get("compatibilityLevel") != "BACKWARD":
        raise Fail(f"config/orders-value: {conf}")
    state["config/orders-value"] = conf
    # Apicurio's own API: artifacts, their versions (globalId, contentId, state) and rules
    _, arts = call("GET", f"{v3}/search/artifacts?limit=100&orderby=name")
    state["v3/artifacts"] = sorted(strip_times(arts["artifacts"]), key=lambda a: a["artifactId"])
    for a in state["v3/artifacts"]:
        aid = a["artifactId"]
        _, vs = call("GET", f"{v3}/groups/default/artifacts/{aid}/versions?limit=100")
        state[f"v3/{aid}/versions"] = sorted(strip_times(vs["versions"]), key=lambda x: int(x["version"]))
        _, rules = call("GET", f"{v3}/groups/default/artifacts/{aid}/rules")
        state[f"v3/{aid}/rules"] = sorted(rules)
    if state["v3/orders-value/rules"] != ["COMPATIBILITY"]:
        raise Fail(f"v3 rules of orders-value: {state['v3/orders-value/rules']}")
    with open(out, "w") as f:
        json.dump(state, f, indent=1, sort_keys=True)
    n = sum(len(v) for v in expected.values())
    print(json.dumps({"subjects": len(expected), "versions": n, "ids": sorted(int(i) for i in state["by_id"])}))


def cmd_after_restart(base):
    cc = f"{base}/apis/ccompat/v7"
    # the compatibility rule came back from the journal: the incompatible schema is still refused
    rejected = refused(base, "orders-value", ORDER_BAD)
    # the id counters came back too: a new version gets a fresh id, an old schema its old id
    _, v1 = call("GET", f"{cc}/subjects/orders-value/versions/1")
    again = register(base, "orders-value", "AVRO", ORDER_V1)
    if again != v1["id"]:
        raise Fail(f"re-registering orders-value v1 after the restart gave id {again}, expected {v1['id']}")
    new_id = register(base, "orders-value", "AVRO", ORDER_V3)
    known = []
    for s, vs in PHASE1.items():
        for v in range(1, len(vs) + 1):
            known.append(call("GET", f"{cc}/subjects/{s}/versions/{v}")[1]["id"])
    if new_id in known or new_id <= max(known):
        raise Fail(f"orders-value v3 got id {new_id}, which is not above the ids before the restart {sorted(known)}")
    _, versions = call("GET", f"{cc}/subjects/orders-value/versions")
    if versions != [1, 2, 3]:
        raise Fail(f"orders-value versions after registering v3: {versions}")
    print(json.dumps({"incompatible_refused": rejected, "v3_id": new_id, "ids_before": sorted(known)}))


def main(argv):
    try:
        if len(argv) == 3 and argv[1] == "register":
            cmd_register(argv[2].rstrip("/"))
        elif len(argv) == 4 and argv[1] == "dump":
            cmd_dump(argv[2].rstrip("/"), argv[3])
        elif len(argv) == 4 and argv[1] == "dump-final":
            cmd_dump(argv[2].rstrip("/"), argv[3], expect_extra=True)
        elif len(argv) == 3 and argv[1] == "after-restart":
            cmd_after_restart(argv[2].rstrip("/"))
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except Fail as e:
        print(str(e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
