"""Checks of exported Argo manifests, for tests/it/export.rs.

  argo_check.py validate SCHEMA FILE...
      Validates each file against Argo's published JSON schema made strict (every definition
      that lists properties refuses others), then lints what the schema cannot say: names,
      template references, `depends` references and syntax, cycles, and that each semaphore's
      limit is a key of a ConfigMap of the file (a positive whole number). A file may hold
      ConfigMaps before its Workflow or CronWorkflow. Prints "ok FILE" each.

  argo_check.py run FILE --wvflow BIN --state DIR --run-time T [-p NAME=VALUE ...]
                   [--template FILE ...]
      Interprets the workflow as Argo would on one machine: the DAG's tasks start when their
      `depends` expression holds over the phases of the tasks it names, each container runs
      with its retryStrategy (limit, expression over the exit code), a nested DAG runs its
      tasks, a task `withParam` (`withSequence`) runs once per item of the list (for each
      number below the count) an earlier task printed (`{{tasks.T.outputs.result}}`,
      `{{item}}`, `{{inputs.parameters.P}}`), then the exit handler. A template's
      `synchronization` is held while it runs (with its retries): a semaphore by at most its
      ConfigMap key's number of tasks at once, a mutex by one; the most holders each had at
      once is printed on stderr, "semaphore CONFIGMAP/KEY: N of LIMIT at most".
      A `resource` template that creates a Workflow of a WorkflowTemplate (one of the
      `--template` files) and waits for it (`successCondition`) runs it then, under the name
      its manifest gives, retried as its retryStrategy says; one JSON line on stderr each:
      {"awaited": TEMPLATE, "name": ..., "parameters": {...}, "result": FINISH-JSON}. One that
      does not wait records it; once the workflow has ended, each such Workflow runs (named
      TEMPLATE-cN) and one JSON line on stderr says what it was and how it ended:
      {"created": TEMPLATE, "name": ..., "parameters": {...}, "result": FINISH-JSON}.
      Prints the JSON the `wvflow-finish` task printed.
"""

import copy
import json
import re
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

import jsonschema
import yaml

NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
PHASES = {"Succeeded", "Failed", "Errored", "Skipped", "Omitted", "Daemoned"}


def strict(schema):
    """The schema with every object definition that lists properties closed to others."""
    schema = copy.deepcopy(schema)
    for definition in schema["definitions"].values():
        if "properties" in definition and "additionalProperties" not in definition:
            definition["additionalProperties"] = False
    return schema


def spec_of(doc):
    return doc["spec"]["workflowSpec"] if doc["kind"] == "CronWorkflow" else doc["spec"]


def depends_names(expression):
    """The task names an expression refers to, after checking its syntax."""
    tokens = re.findall(r"\(|\)|&&|\|\||!|[a-z0-9-]+\.[A-Za-z]+|\S+", expression)
    names = []
    expect_operand = True
    depth = 0
    for token in tokens:
        if token == "(":
            depth += 1
        elif token == ")":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced ) in {expression!r}")
        elif token in ("&&", "||"):
            if expect_operand:
                raise ValueError(f"{token} without an operand before it in {expression!r}")
            expect_operand = True
            continue
        elif token == "!":
            continue
        elif "." in token:
            name, phase = token.split(".", 1)
            if phase not in PHASES:
                raise ValueError(f"unknown phase {phase!r} in {expression!r}")
            names.append(name)
            expect_operand = False
            continue
        elif NAME.match(token):
            names.append(token)
            expect_operand = False
            continue
        else:
            raise ValueError(f"unexpected {token!r} in {expression!r}")
    if depth != 0 or expect_operand:
        raise ValueError(f"incomplete expression {expression!r}")
    return names


def lint(doc):
    problems = []
    meta = doc["metadata"]
    name = meta.get("name") or meta.get("generateName", "").rstrip("-")
    if not NAME.match(name) or len(name) > 63:
        problems.append(f"metadata name {name!r} is not a Kubernetes name")
    spec = spec_of(doc)
    templates = {}
    for t in spec["templates"]:
        if not NAME.match(t["name"]):
            problems.append(f"template name {t['name']!r}")
        if t["name"] in templates:
            problems.append(f"template {t['name']!r} twice")
        templates[t["name"]] = t
    for ref in [spec.get("entrypoint"), spec.get("onExit")]:
        if ref and ref not in templates:
            problems.append(f"no template {ref!r}")
    for t in templates.values():
        tasks = t.get("dag", {}).get("tasks", [])
        names = [task["name"] for task in tasks]
        if len(set(names)) != len(names):
            problems.append(f"task names repeat in {t['name']!r}")
        graph = {}
        for task in tasks:
            if not NAME.match(task["name"]):
                problems.append(f"task name {task['name']!r}")
            if task.get("template") not in templates:
                problems.append(f"task {task['name']!r}: no template {task.get('template')!r}")
            try:
                refs = depends_names(task.get("depends", "")) if task.get("depends") else []
            except ValueError as e:
                problems.append(f"task {task['name']!r}: {e}")
                refs = []
            for ref in refs:
                if ref not in names:
                    problems.append(f"task {task['name']!r} depends on unknown task {ref!r}")
            # A task reads another's outputs only after it: Argo resolves them at start.
            for used in re.findall(r"\{\{tasks\.([a-z0-9-]+)\.", json.dumps(task)):
                if used not in refs:
                    problems.append(f"task {task['name']!r} reads {used!r} without depending on it")
            graph[task["name"]] = refs
        # Cycles: a depth-first walk that meets a task on its own path.
        state = {}

        def visit(n, path):
            if state.get(n) == "done":
                return
            if state.get(n) == "open":
                problems.append(f"cycle through {' -> '.join(path + [n])}")
                return
            state[n] = "open"
            for m in graph.get(n, []):
                visit(m, path + [n])
            state[n] = "done"

        for n in graph:
            visit(n, [])
    return problems


CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


def split(docs):
    """A file's ConfigMaps and its one workflow document."""
    config_maps = [d for d in docs if d and d.get("kind") == "ConfigMap"]
    workflows = [d for d in docs if d and d.get("kind") != "ConfigMap"]
    if len(workflows) != 1:
        raise ValueError(f"{len(workflows)} workflow documents, not one")
    return config_maps, workflows[0]


def lint_config_maps(config_maps, doc):
    """ConfigMaps as Kubernetes takes them, and every semaphore's limit one of their keys."""
    problems = []
    limits = {}
    for cm in config_maps:
        name = cm.get("metadata", {}).get("name", "")
        if cm.get("apiVersion") != "v1" or not NAME.match(name):
            problems.append(f"ConfigMap {name!r}: apiVersion v1 and a Kubernetes name")
        unknown = sorted(set(cm) - {"apiVersion", "kind", "metadata", "data"})
        unknown += sorted(set(cm.get("metadata", {})) - {"name", "namespace", "labels", "annotations"})
        if unknown:
            problems.append(f"ConfigMap {name!r}: unknown keys {unknown}")
        for key, value in cm.get("metadata", {}).get("labels", {}).items():
            if not isinstance(value, str) or not re.match(r"^([a-z0-9.-]+/)?[A-Za-z0-9._-]+$", key):
                problems.append(f"ConfigMap {name!r}: label {key!r}: {value!r}")
        for key, value in cm.get("data", {}).items():
            if not CONFIG_KEY.match(key) or not isinstance(value, str):
                problems.append(f"ConfigMap {name!r}: key {key!r} or its value {value!r}")
            limits[(name, key)] = value
    for t in spec_of(doc)["templates"]:
        for semaphore in t.get("synchronization", {}).get("semaphores", []):
            ref = semaphore.get("configMapKeyRef", {})
            limit = limits.get((ref.get("name"), ref.get("key")))
            if limit is None or not limit.isdigit() or int(limit) < 1:
                problems.append(f"template {t['name']!r}: semaphore {ref} has no limit in the file")
    return problems


def validate(schema_path, files):
    schema = strict(json.load(open(schema_path)))
    failed = False
    for path in files:
        try:
            config_maps, doc = split(list(yaml.safe_load_all(open(path))))
        except ValueError as e:
            failed = True
            print(f"FAILED {path}\n  {e}")
            continue
        kind = doc.get("kind")
        target = {"$ref": f"#/definitions/io.argoproj.workflow.v1alpha1.{kind}",
                  "definitions": schema["definitions"]}
        validator = jsonschema.Draft202012Validator(target)
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
        problems = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:10]]
        problems += lint(doc)
        problems += lint_config_maps(config_maps, doc)
        if problems:
            failed = True
            print(f"FAILED {path}")
            for p in problems:
                print(f"  {p}")
        else:
            print(f"ok {path}")
    return 1 if failed else 0


def evaluate(expression, phases):
    """A `depends` expression over the tasks' phases (a missing task has no phase yet)."""
    def phase(m):
        if m.group(2):
            return repr(phases.get(m.group(1)) == m.group(2))
        # A bare name: the task succeeded (or was skipped, or is a running daemon).
        return repr(phases.get(m.group(1)) in ("Succeeded", "Skipped", "Daemoned"))

    python = re.sub(r"([a-z0-9-]+)(?:\.([A-Za-z]+))?", phase, expression)
    python = python.replace("&&", " and ").replace("||", " or ").replace("!", " not ")
    return eval(python, {"__builtins__": {}})


class Locks:
    """A template's synchronization: Argo's semaphores (at most the ConfigMap key's number of
    holders) and mutexes (one holder), each counting the most holders it had at once."""

    def __init__(self, config_maps):
        self.limits = {(cm["metadata"]["name"], key): int(value)
                       for cm in config_maps for key, value in cm.get("data", {}).items()}
        self.guard = threading.Lock()
        self.locks, self.held, self.most = {}, {}, {}

    def of(self, sync):
        """The locks of a `synchronization`, in one order (no two tasks wait on each other)."""
        named = [(f"semaphore {s['configMapKeyRef']['name']}/{s['configMapKeyRef']['key']}",
                  self.limits[(s["configMapKeyRef"]["name"], s["configMapKeyRef"]["key"])])
                 for s in sync.get("semaphores", [])]
        named += [(f"mutex {m['name']}", 1) for m in sync.get("mutexes", [])]
        with self.guard:
            for name, limit in named:
                self.locks.setdefault(name, (threading.BoundedSemaphore(limit), limit))
        return sorted(name for name, _ in named)

    def hold(self, names, work):
        for name in names:
            self.locks[name][0].acquire()
            with self.guard:
                self.held[name] = self.held.get(name, 0) + 1
                self.most[name] = max(self.most.get(name, 0), self.held[name])
        try:
            return work()
        finally:
            for name in reversed(names):
                with self.guard:
                    self.held[name] -= 1
                self.locks[name][0].release()

    def report(self):
        for name in sorted(self.most):
            if name.startswith("semaphore"):
                print(f"{name}: {self.most[name]} of {self.locks[name][1]} at most", file=sys.stderr)


def run(path, wvflow, state, run_time, params, template_files):
    """The workflow of `path`, then each Workflow a `resource` template of it created (from a
    WorkflowTemplate of `template_files`), in the order created, and theirs after them."""
    config_maps, doc = split(list(yaml.safe_load_all(open(path))))
    locks = Locks(config_maps)
    known = {}
    for template_file in template_files:
        _, template = split(list(yaml.safe_load_all(open(template_file))))
        if template["kind"] != "WorkflowTemplate":
            raise ValueError(f"{template_file}: a {template['kind']}, not a WorkflowTemplate")
        known[template["metadata"]["name"]] = template
    output, created = run_workflow(doc, "r1", wvflow, state, run_time, params, locks, known)
    count = 0
    while created:
        template, parameters = created.pop(0)
        count += 1
        name = f"{template}-c{count}"
        out, more = run_workflow(known[template], name, wvflow, state, run_time, parameters,
                                 locks, known)
        print(json.dumps({"created": template, "name": name, "parameters": parameters,
                          "result": json.loads(out)}), file=sys.stderr)
        created.extend(more)
    locks.report()
    print(output)
    return 0


def created_workflow(manifest, known):
    """The WorkflowTemplate and parameters of a Workflow a `resource` template creates, after
    checking it is one Argo would accept from a WorkflowTemplate of `known`."""
    if manifest.get("apiVersion") != "argoproj.io/v1alpha1" or manifest.get("kind") != "Workflow":
        raise ValueError(f"a resource the interpreter does not create: {manifest!r}")
    name = manifest["spec"]["workflowTemplateRef"]["name"]
    if name not in known:
        raise ValueError(f"no WorkflowTemplate {name!r} among {sorted(known)}")
    declared = {p["name"] for p in spec_of(known[name]).get("arguments", {}).get("parameters", [])}
    given = {p["name"]: p["value"] for p in manifest["spec"].get("arguments", {}).get("parameters", [])}
    if not set(given) <= declared or not all(isinstance(v, str) for v in given.values()):
        raise ValueError(f"parameters {given!r} are not text values of {sorted(declared)}")
    return name, given


def run_workflow(doc, workflow_name, wvflow, state, run_time, params, locks, known):
    """Runs one workflow; returns what its `wvflow-finish` printed and the Workflows its
    `resource` templates created."""
    spec = spec_of(doc)
    created = []
    values = {p["name"]: p.get("value") for p in spec.get("arguments", {}).get("parameters", [])}
    values.update(params)
    templates = {t["name"]: t for t in spec["templates"]}
    scratch = tempfile.mkdtemp()

    def substitute(text, attempt, inputs):
        text = text.replace("{{workflow.name}}", workflow_name)
        text = text.replace("{{workflow.creationTimestamp}}", run_time)
        text = text.replace("{{workflow.scheduledTime}}", run_time)
        text = text.replace("{{=asInt(retries) + 1}}", str(attempt))
        text = re.sub(r"\{\{workflow\.parameters\.([A-Za-z0-9_-]+)\}\}",
                      lambda m: str(values[m.group(1)]), text)
        text = re.sub(r"\{\{inputs\.parameters\.([A-Za-z0-9_-]+)\}\}",
                      lambda m: str(inputs[m.group(1)]), text)
        if "{{" in text:
            raise ValueError(f"a template variable the interpreter does not know: {text}")
        return text.replace("/wvflow/state", state)

    def run_container(t, inputs):
        paths = {}
        for artifact in t.get("inputs", {}).get("artifacts", []):
            local = f"{scratch}/{artifact['name']}"
            with open(local, "w") as out:
                out.write(artifact["raw"]["data"])
            paths[artifact["path"]] = local
        declared = {p["name"] for p in t.get("inputs", {}).get("parameters", [])}
        if set(inputs) != declared:
            raise ValueError(f"template {t['name']!r} takes {declared}, given {set(inputs)}")
        retry = t.get("retryStrategy", {})
        limit = int(retry.get("limit", "0"))
        expression = retry.get("expression", "true")
        attempt = 0
        while True:
            c = t["container"]
            args = [paths.get(a, a) for a in (substitute(a, attempt + 1, inputs) for a in c["args"])]
            done = subprocess.run([wvflow] + args, cwd=c["workingDir"], capture_output=True, text=True)
            code = done.returncode
            if code == 0:
                return "Succeeded", done.stdout
            again = eval(expression.replace("asInt(lastRetry.exitCode)", str(code))
                         .replace("&&", " and ").replace("||", " or "), {"__builtins__": {}})
            if attempt >= limit or not again:
                return "Failed", done.stdout
            attempt += 1

    def run_template(name, inputs=None):
        t = templates[name]
        if "resource" in t:
            return run_resource(t, inputs or {})
        if "dag" in t:
            return run_dag(t, inputs or {})
        held = locks.of(t.get("synchronization", {}))
        return locks.hold(held, lambda: run_container(t, inputs or {}))

    def run_resource(t, inputs):
        """A `resource` template that creates a Workflow of a WorkflowTemplate. With a
        `successCondition` it waits for that Workflow: it runs here and now, under the name
        its manifest gives, and the template succeeds when its run did (each try, as the
        retryStrategy allows, creates another); without one, the Workflow runs after this one.
        """
        resource = t["resource"]
        if resource["action"] != "create":
            raise ValueError(f"resource action {resource['action']!r}")
        waits = resource.get("successCondition")
        if waits and (waits != "status.phase == Succeeded"
                      or resource.get("failureCondition") != "status.phase in (Failed, Error)"):
            raise ValueError(f"conditions the interpreter does not read: {resource!r}")
        limit = int(t.get("retryStrategy", {}).get("limit", "0"))
        attempt = 0
        while True:
            manifest = yaml.safe_load(substitute(resource["manifest"], attempt + 1, inputs))
            template, parameters = created_workflow(manifest, known)
            if not waits:
                created.append((template, parameters))
                return "Succeeded", ""
            name = manifest["metadata"]["name"]
            if not NAME.match(name.replace(".", "-")):
                raise ValueError(f"a child Workflow's name that is not a Kubernetes name: {name!r}")
            out, more = run_workflow(known[template], name, wvflow, state, run_time, parameters,
                                     locks, known)
            created.extend(more)
            print(json.dumps({"awaited": template, "name": name, "parameters": parameters,
                              "result": json.loads(out)}), file=sys.stderr)
            if json.loads(out)["state"] == "success":
                return "Succeeded", ""
            if attempt >= limit:
                return "Failed", ""
            attempt += 1

    def run_dag(t, inputs):
        """The DAG's tasks as Argo runs them: each as soon as its `depends` allow, side by
        side (at most the template's, or the workflow's, `parallelism` at once); a task
        `withParam` once per item, at most the template's `parallelism` at once. Its phase:
        failed when a task failed that does not continue on failure."""
        dag = t["dag"]["tasks"]
        phases, results = {}, {}
        refs = lambda task: depends_names(task["depends"]) if task.get("depends") else []

        def text(value):
            value = re.sub(r"\{\{tasks\.([a-z0-9-]+)\.outputs\.result\}\}",
                           lambda m: results[m.group(1)].strip(), value)
            return re.sub(r"\{\{inputs\.parameters\.([A-Za-z0-9_-]+)\}\}",
                          lambda m: str(inputs[m.group(1)]), value)

        def run_task(task):
            arguments = {p["name"]: p["value"]
                         for p in task.get("arguments", {}).get("parameters", [])}
            if "withParam" in task or "withSequence" in task:
                if "withParam" in task:
                    items = json.loads(text(task["withParam"]))
                else:
                    items = [str(i) for i in range(int(text(task["withSequence"]["count"])))]
                if not isinstance(items, list):
                    raise ValueError(f"withParam of {task['name']!r} is not a list: {items!r}")
                def item_of(value, i):
                    if isinstance(i, dict):
                        value = re.sub(r"\{\{item\.([A-Za-z0-9_-]+)\}\}",
                                       lambda m: str(i[m.group(1)]), value)
                    return value.replace("{{item}}", json.dumps(i) if not isinstance(i, str) else i)
                each = [{k: item_of(text(v), i) for k, v in arguments.items()} for i in items]
                # Items in reverse order, side by side: the state must not care.
                with ThreadPoolExecutor(max_workers=t.get("parallelism") or 8) as pool:
                    ends = list(pool.map(lambda a: run_template(task["template"], a),
                                         reversed(each)))
                ends_phases = [p for p, _ in ends]
                phase = ("Skipped" if not ends else
                         "Failed" if "Failed" in ends_phases else "Succeeded")
                return phase, ""
            return run_template(task["template"], {k: text(v) for k, v in arguments.items()})

        running = {}
        width = t.get("parallelism") or spec.get("parallelism") or 16
        with ThreadPoolExecutor(max_workers=width) as pool:
            while len(phases) < len(dag):
                moved = False
                for task in dag:
                    name = task["name"]
                    if name in phases or name in running.values():
                        continue
                    if not all(n in phases for n in refs(task)):
                        continue
                    moved = True
                    if task.get("depends") and not evaluate(task["depends"], phases):
                        phases[name] = "Omitted"
                    else:
                        running[pool.submit(run_task, task)] = name
                if moved:
                    continue
                if not running:
                    raise RuntimeError(f"no task can start; phases: {phases}")
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in done:
                    name = running.pop(future)
                    phases[name], results[name] = future.result()
        output = results.get("wvflow-finish")
        failed = any(phases[task["name"]] == "Failed" and
                     not task.get("continueOn", {}).get("failed") for task in dag)
        return ("Failed" if failed else "Succeeded"), output

    _, output = run_template(spec["entrypoint"])
    if spec.get("onExit"):
        _, again = run_template(spec["onExit"])
        if json.loads(again) != json.loads(output):
            raise RuntimeError("the exit handler decided the run again")
    return output, created


def main(argv):
    if argv[0] == "validate":
        return validate(argv[1], argv[2:])
    if argv[0] == "run":
        path = argv[1]
        options = {}
        params = {}
        templates = []
        rest = argv[2:]
        while rest:
            flag, value, rest = rest[0], rest[1], rest[2:]
            if flag == "-p":
                name, text = value.split("=", 1)
                params[name] = text
            elif flag == "--template":
                templates.append(value)
            else:
                options[flag] = value
        return run(path, options["--wvflow"], options["--state"], options["--run-time"], params,
                   templates)
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
