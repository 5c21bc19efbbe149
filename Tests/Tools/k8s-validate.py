#!/usr/bin/env python3
"""Strict offline check of Kubernetes manifests against the `kubernetes` Python client's models.

Usage: k8s-validate.py FILE.yaml   (run with the venv's python: Tests/Tools/k8s-venv.sh install)

No API server can run on this machine (/work/shared/BATCH-AND-UPLOAD-FACTS.md, 1.2), so this is the
only check the Kubernetes Job that `rehost batch emit kubernetes` prints gets here. It proves field
names, types and the handful of Job rules below; it proves nothing about admission or behaviour.

For every YAML document:
 1. `apiVersion` + `kind` name the model class (batch/v1 Job -> V1Job, v1 ConfigMap -> V1ConfigMap).
 2. The document is walked with each model's `openapi_types` and `attribute_map`: an unknown field
    is an error (the client's own deserializer silently drops unknown fields, and it also accepts
    snake_case names the API server would not know), types must match, required fields (those the
    pydantic model declares required) must be present. `null` counts as absent, as on the server.
 3. The client then deserializes it (`ApiClient().__deserialize(doc, 'V1Job')`, pydantic
    validation); anything it refuses that step 2 missed is reported too.
 4. Rules the API server enforces that matter for rehost's Indexed Job: completionMode Indexed
    needs completions; backoffLimitPerIndex and maxFailedIndexes need Indexed (and each other);
    podFailurePolicy and backoffLimitPerIndex need restartPolicy Never; a Job's restartPolicy is
    Never or OnFailure; FailIndex needs backoffLimitPerIndex; exit codes are 0-255, never 0 for
    operator In, ordered and unique; container and volume names are DNS-1123 labels, unique;
    every volumeMount names a volume; a Job's containers have an image; metadata.name is a DNS-1123
    subdomain, at most 63 characters for a Job (its name becomes a label value).

Output: one line per problem, `FILE: path.to.field: problem`, and exit 1; otherwise
`ok: N documents` and exit 0. Exit 2 when the file cannot be read or parsed as YAML.
"""

import base64
import copy
import datetime
import re
import sys

import yaml
import kubernetes.client.models as models
from kubernetes.client import ApiClient

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
# Resource quantities are strings in the models but the API takes plain numbers too (`cpu: 1`).
QUANTITY_MAPS = {
    ("V1ResourceRequirements", "limits"), ("V1ResourceRequirements", "requests"),
    ("V1VolumeResourceRequirements", "limits"), ("V1VolumeResourceRequirements", "requests"),
    ("V1ResourceQuotaSpec", "hard"), ("V1LimitRangeItem", "max"), ("V1LimitRangeItem", "min"),
    ("V1LimitRangeItem", "default"), ("V1LimitRangeItem", "default_request"),
}
QUANTITY_FIELDS = {("V1EmptyDirVolumeSource", "size_limit")}


class Checker:
    def __init__(self):
        self.problems = []  # (path, message)

    def problem(self, path, message):
        self.problems.append((path or "(document)", message))

    # -- paths -----------------------------------------------------------------------------------
    @staticmethod
    def key(path, name):
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", str(name)):
            return f"{path}.{name}" if path else str(name)
        return f'{path}["{name}"]'

    # -- the strict walk -------------------------------------------------------------------------
    def walk(self, value, type_name, path, quantity=False):
        if value is None:
            return
        if type_name == "object":
            return
        if type_name.startswith("Optional["):
            return self.walk(value, type_name[len("Optional["):-1], path, quantity)
        if type_name.startswith("List["):
            if not isinstance(value, list):
                return self.problem(path, f"expected a list, got {describe(value)}")
            for index, item in enumerate(value):
                if item is None:
                    self.problem(f"{path}[{index}]", "null list item")
                else:
                    self.walk(item, type_name[len("List["):-1], f"{path}[{index}]", quantity)
            return
        match = re.fullmatch(r"Dict\[str, (.*)\]", type_name)
        if match:
            if not isinstance(value, dict):
                return self.problem(path, f"expected a map, got {describe(value)}")
            for k, item in value.items():
                if not isinstance(k, str):
                    self.problem(path, f"map key {k!r} is not a string")
                    continue
                if item is not None:
                    self.walk(item, match.group(1), self.key(path, k), quantity)
                    if quantity and is_number(item):
                        value[k] = str(item)  # for the client's deserializer, which wants strings
            return
        if type_name == "str":
            if isinstance(value, str):
                return
            if quantity and is_number(value):
                return
            return self.problem(path, f"expected a string, got {describe(value)}")
        if type_name == "int":
            if isinstance(value, int) and not isinstance(value, bool):
                return
            return self.problem(path, f"expected an integer, got {describe(value)}")
        if type_name == "float":
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return
            return self.problem(path, f"expected a number, got {describe(value)}")
        if type_name == "bool":
            if isinstance(value, bool):
                return
            return self.problem(path, f"expected a boolean (true/false), got {describe(value)}")
        if type_name in ("datetime", "date"):
            if isinstance(value, (datetime.datetime, datetime.date)):
                return  # PyYAML already parsed a timestamp
            if isinstance(value, str) and (RFC3339.match(value) if type_name == "datetime"
                                           else re.fullmatch(r"\d{4}-\d{2}-\d{2}", value)):
                return
            return self.problem(path, f"expected an RFC 3339 {type_name}, got {describe(value)}")
        if type_name == "bytes":
            if isinstance(value, str):
                try:
                    base64.b64decode(value, validate=True)
                    return
                except ValueError:
                    return self.problem(path, "expected base64 data")
            return self.problem(path, f"expected base64 data in a string, got {describe(value)}")
        cls = getattr(models, type_name, None)
        if cls is None or not hasattr(cls, "openapi_types"):
            return self.problem(path, f"validator: unknown type {type_name}")
        self.walk_model(value, cls, path)

    def walk_model(self, value, cls, path):
        if not isinstance(value, dict):
            return self.problem(path, f"expected an object ({cls.__name__}), got {describe(value)}")
        wire_to_attr = {wire: attr for attr, wire in cls.attribute_map.items()}
        for wire, item in value.items():
            attr = wire_to_attr.get(wire)
            field_path = self.key(path, wire)
            if attr is None:
                hint = ""
                if wire in cls.attribute_map:
                    hint = f" (the API's name is {cls.attribute_map[wire]})"
                self.problem(field_path, f"unknown field{hint} in {cls.__name__}")
                continue
            quantity = (cls.__name__, attr) in QUANTITY_MAPS | QUANTITY_FIELDS
            self.walk(item, cls.openapi_types[attr], field_path, quantity)
            if quantity and is_number(item):
                value[wire] = str(item)
        for attr, field in getattr(cls, "model_fields", {}).items():
            wire = cls.attribute_map.get(attr, attr)
            if field.is_required() and value.get(wire) is None:
                self.problem(self.key(path, wire), f"required field missing in {cls.__name__}")


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def sub(path, dotted):
    return f"{path}.{dotted}" if path else dotted


def describe(value):
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"number {value}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a map"
    return type(value).__name__


def model_for(api_version, kind):
    """batch/v1 Job -> V1Job; events.k8s.io/v1 Event -> EventsV1Event; v1 Event -> CoreV1Event."""
    group, _, version = api_version.rpartition("/")
    stem = version[:1].upper() + version[1:] + kind
    candidates = []
    if group:
        prefix = group.split(".")[0]
        candidates.append(prefix[:1].upper() + prefix[1:] + stem)
    else:
        candidates.append("Core" + stem)
    candidates.append(stem)
    for name in candidates:
        cls = getattr(models, name, None)
        if cls is not None and hasattr(cls, "openapi_types") and "kind" in cls.attribute_map:
            return cls
    return None


# -- rules the API server enforces ----------------------------------------------------------------
def check_name(c, doc, path, kind):
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    name = meta.get("name")
    if name is None:
        if not meta.get("generateName"):
            c.problem(sub(path, "metadata.name"), "required: a name or metadata.generateName")
        return
    if not isinstance(name, str):
        return
    limit = 63 if kind in ("Job", "CronJob") else 253
    if len(name) > limit:
        c.problem(sub(path, "metadata.name"), f"longer than {limit} characters")
    if not DNS1123_SUBDOMAIN.match(name):
        c.problem(sub(path, "metadata.name"),
                  f"{name!r} is not a DNS-1123 subdomain (lower-case letters, digits, '-' and '.')")


def check_pod_spec(c, spec, path, in_job):
    if not isinstance(spec, dict):
        return set()
    volumes, names = set(), set()
    for index, volume in enumerate(spec.get("volumes") or []):
        if isinstance(volume, dict) and isinstance(volume.get("name"), str):
            vpath = f"{path}.volumes[{index}].name"
            name = volume["name"]
            if not (DNS1123_LABEL.match(name) and len(name) <= 63):
                c.problem(vpath, f"{name!r} is not a DNS-1123 label")
            if name in volumes:
                c.problem(vpath, f"duplicate volume name {name!r}")
            volumes.add(name)
    for group in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(group) or []):
            if not isinstance(container, dict):
                continue
            cpath = f"{path}.{group}[{index}]"
            name = container.get("name")
            if isinstance(name, str):
                if not (DNS1123_LABEL.match(name) and len(name) <= 63):
                    c.problem(f"{cpath}.name", f"{name!r} is not a DNS-1123 label")
                if name in names:
                    c.problem(f"{cpath}.name", f"duplicate container name {name!r}")
                names.add(name)
            if in_job and not container.get("image"):
                c.problem(f"{cpath}.image", "required: a pod's containers need an image")
            for m, mount in enumerate(container.get("volumeMounts") or []):
                if isinstance(mount, dict) and isinstance(mount.get("name"), str) and mount["name"] not in volumes:
                    c.problem(f"{cpath}.volumeMounts[{m}].name",
                              f"no volume named {mount['name']!r} in {path}.volumes")
    return names


def check_job_spec(c, spec, path):
    if not isinstance(spec, dict):
        return
    p = lambda name: f"{path}.{name}"
    template = spec.get("template") if isinstance(spec.get("template"), dict) else {}
    pod = template.get("spec") if isinstance(template.get("spec"), dict) else {}
    pod_path = f"{path}.template.spec"
    containers = check_pod_spec(c, pod, pod_path, in_job=True)
    restart = pod.get("restartPolicy")
    mode = spec.get("completionMode")
    for name in ("parallelism", "completions", "backoffLimit", "backoffLimitPerIndex",
                 "maxFailedIndexes", "activeDeadlineSeconds", "ttlSecondsAfterFinished"):
        value = spec.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value < (1 if name == "activeDeadlineSeconds" else 0):
            c.problem(p(name), f"must not be {'less than 1' if name == 'activeDeadlineSeconds' else 'negative'}")
    if restart not in ("Never", "OnFailure"):
        c.problem(f"{pod_path}.restartPolicy",
                  f"a Job's pods need restartPolicy Never or OnFailure, got {restart!r}")
    if mode not in (None, "NonIndexed", "Indexed"):
        c.problem(p("completionMode"), f"must be NonIndexed or Indexed, got {mode!r}")
    if mode == "Indexed" and spec.get("completions") is None:
        c.problem(p("completions"), "required when completionMode is Indexed")
    if spec.get("backoffLimitPerIndex") is not None:
        if mode != "Indexed":
            c.problem(p("backoffLimitPerIndex"), "requires completionMode: Indexed")
        if restart != "Never":
            c.problem(f"{pod_path}.restartPolicy", "must be Never when backoffLimitPerIndex is set")
    if spec.get("maxFailedIndexes") is not None:
        if spec.get("backoffLimitPerIndex") is None:
            c.problem(p("maxFailedIndexes"), "requires backoffLimitPerIndex")
        completions = spec.get("completions")
        if isinstance(completions, int) and isinstance(spec["maxFailedIndexes"], int) \
                and spec["maxFailedIndexes"] > completions:
            c.problem(p("maxFailedIndexes"), "must not exceed completions")
    policy = spec.get("podFailurePolicy")
    if isinstance(policy, dict):
        if restart != "Never":
            c.problem(f"{pod_path}.restartPolicy", "must be Never when podFailurePolicy is set")
        for index, rule in enumerate(policy.get("rules") or []):
            if not isinstance(rule, dict):
                continue
            rpath = f"{path}.podFailurePolicy.rules[{index}]"
            action = rule.get("action")
            if action not in ("FailJob", "FailIndex", "Ignore", "Count"):
                c.problem(f"{rpath}.action", f"must be FailJob, FailIndex, Ignore or Count, got {action!r}")
            if action == "FailIndex" and spec.get("backoffLimitPerIndex") is None:
                c.problem(f"{rpath}.action", "FailIndex requires backoffLimitPerIndex")
            has_codes, has_conditions = rule.get("onExitCodes") is not None, rule.get("onPodConditions") is not None
            if has_codes == has_conditions:
                c.problem(rpath, "exactly one of onExitCodes and onPodConditions is required")
            codes = rule.get("onExitCodes")
            if not isinstance(codes, dict):
                continue
            operator = codes.get("operator")
            if operator not in ("In", "NotIn"):
                c.problem(f"{rpath}.onExitCodes.operator", f"must be In or NotIn, got {operator!r}")
            container = codes.get("containerName")
            if isinstance(container, str) and container not in containers:
                c.problem(f"{rpath}.onExitCodes.containerName", f"no container named {container!r} in the template")
            values = codes.get("values")
            if not isinstance(values, list):
                continue
            if not values:
                c.problem(f"{rpath}.onExitCodes.values", "must not be empty")
            previous = None
            for v, code in enumerate(values):
                vpath = f"{rpath}.onExitCodes.values[{v}]"
                if not isinstance(code, int) or isinstance(code, bool):
                    continue
                if operator == "In" and code == 0:
                    c.problem(vpath, "exit code 0 cannot be used with operator In")
                elif not 0 <= code <= 255:
                    c.problem(vpath, f"exit code {code} is outside 1-255")
                if previous is not None and code <= previous:
                    c.problem(vpath, "values must be unique and in increasing order")
                previous = code


def check_semantics(c, doc, path):
    kind = doc.get("kind")
    check_name(c, doc, path, kind)
    spec = doc.get("spec") if isinstance(doc.get("spec"), dict) else None
    spec_path = Checker.key(path, "spec")
    if spec is None:
        return
    if kind == "Job":
        check_job_spec(c, spec, spec_path)
    elif kind == "CronJob":
        job_template = spec.get("jobTemplate")
        if isinstance(job_template, dict):
            check_job_spec(c, job_template.get("spec"), f"{spec_path}.jobTemplate.spec")
    elif kind == "Pod":
        check_pod_spec(c, spec, spec_path, in_job=False)
    elif isinstance(spec.get("template"), dict):
        check_pod_spec(c, spec["template"].get("spec"), f"{spec_path}.template.spec", in_job=False)


def check_document(doc, path):
    c = Checker()
    if not isinstance(doc, dict):
        c.problem(path, f"a document must be a map, got {describe(doc)}")
        return c.problems
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        c.problem(path, "apiVersion and kind are required strings")
        return c.problems
    cls = model_for(api_version, kind)
    if cls is None:
        c.problem(Checker.key(path, "kind"),
                  f"no model for apiVersion {api_version!r} kind {kind!r} in kubernetes client models")
        return c.problems
    # The walk turns numeric resource quantities (`cpu: 1`, valid for the API server) into strings
    # in this copy, as the client's models want them.
    doc = copy.deepcopy(doc)
    c.walk_model(doc, cls, path)
    check_semantics(c, doc, path)
    if not c.problems:
        # The client's own deserializer (pydantic validation): a second opinion on types and
        # required fields, reported only if the strict walk above found nothing.
        try:
            ApiClient()._ApiClient__deserialize(doc, cls.__name__)
        except (ValueError, TypeError) as error:
            first = str(error).strip().splitlines()
            c.problem(path, "the client's deserializer refused it: " + " / ".join(first[:3]))
    return c.problems


def main(argv):
    if len(argv) != 2:
        print("usage: k8s-validate.py FILE.yaml", file=sys.stderr)
        return 2
    file = argv[1]
    try:
        with open(file, encoding="utf-8") as handle:
            documents = [d for d in yaml.safe_load_all(handle) if d is not None]
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as error:
        print(f"{file}: (file): {error}".replace("\n", " "))
        return 2
    problems = []
    for index, doc in enumerate(documents):
        prefix = f"documents[{index}]" if len(documents) > 1 else ""
        problems += check_document(doc, prefix)
    if not documents:
        problems.append(("(file)", "no YAML documents"))
    for path, message in problems:
        print(f"{file}: {path}: {message}")
    if problems:
        return 1
    print(f"ok: {len(documents)} documents")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
