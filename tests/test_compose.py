"""The deployment files in compose/, checked statically, plus their worker commands run for real.

No Docker engine is needed: compose.yaml is parsed as YAML, its variables are checked
against .env.example and the code, and each worker service's command line is started
as a local process against the test server to prove that it consumes its queue and
answers its own healthcheck.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from facepipe.settings import Settings, WorkerSettings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_DIR = ROOT / "compose"
COMPOSE_FILE = COMPOSE_DIR / "compose.yaml"
TLS_FILE = COMPOSE_DIR / "tls.yaml"
ENV_EXAMPLE = COMPOSE_DIR / ".env.example"
DOCKERFILE = COMPOSE_DIR / "Dockerfile"
COMPOSE_README = COMPOSE_DIR / "README.md"

QUEUES = {"detect", "embed", "writer"}
WORKERS = ("detect", "embed", "writer")

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}; "$${" is an escaped "$".
VAR_REF = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
ENV_LINE = re.compile(r"^\s*(#)?\s*([A-Z][A-Z0-9_]*)=(.*)$")


# ---------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def env_example() -> dict[str, tuple[str, bool]]:
    """Every variable in .env.example: name -> (value, active). Commented-out examples count too."""
    found: dict[str, tuple[str, bool]] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = ENV_LINE.match(line)
        if match:
            commented, name, value = match.groups()
            if name not in found or not commented:
                found[name] = (value.strip(), not commented)
    return found


def env_defaults() -> dict[str, str]:
    """The active VAR=value lines of .env.example, as compose would read them from .env."""
    return {name: value for name, (value, active) in env_example().items() if active}


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose-style interpolation of ${VAR...} (and $$ -> $), failing on unknown variables."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.groups()
        value = env.get(name)
        if op in (":-", "-"):
            if value is None or (op == ":-" and value == ""):
                return arg
            return value
        if value is None or (op == ":?" and value == ""):
            raise AssertionError(f"{name} is required by compose.yaml but unset ({arg})")
        return value

    return VAR_REF.sub(one, text).replace("$$", "$")


def argv(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def option(args: list[str], *names: str) -> list[str]:
    """Every value of an option given as ``-x V``, ``--xx V`` or ``--xx=V``."""
    values = []
    for i, arg in enumerate(args):
        for name in names:
            if arg == name and i + 1 < len(args):
                values.append(args[i + 1])
            elif name.startswith("--") and arg.startswith(name + "="):
                values.append(arg.split("=", 1)[1])
            elif not name.startswith("--") and arg.startswith(name) and len(arg) > len(name):
                values.append(arg[len(name) :])
    return values


def volume(spec: Any) -> list[str]:
    """A short-syntax volume split on ':' (colons inside ${VAR:?message} do not count)."""
    return VAR_REF.sub(lambda m: "${" + m.group(1) + "}", str(spec)).split(":")


def healthcheck_command(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    if isinstance(test, str):
        return test
    assert test[0] in ("CMD", "CMD-SHELL"), test
    return test[1] if test[0] == "CMD-SHELL" else shlex.join(test[1:])


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def worker_services(services: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in services.items() if "worker" in argv(svc.get("command") or [])}


# --------------------------------------------------------------------- static checks


def test_services_exist(services: dict[str, Any]) -> None:
    assert {"redis", "flower", "detect", "embed", "writer"} <= set(services)
    assert set(worker_services(services)) == set(WORKERS)


def test_redis_is_password_protected_durable_and_never_evicts(services: dict[str, Any]) -> None:
    redis = services["redis"]
    # redis:7 for users; another image only when .env names one (REDIS_IMAGE, set by
    # scripts/cluster.sh where redis:7 cannot be pulled).
    image = interpolate(str(redis["image"]), {})
    assert image.split(":")[0] == "redis" and image.split(":")[1].startswith("7"), image
    assert interpolate(str(redis["image"]), {"REDIS_IMAGE": "local-redis:1"}) == "local-redis:1"
    args = argv(redis["command"])
    passwords = option(args, "--requirepass")
    assert passwords and VAR_REF.fullmatch(passwords[0]).group(1) == "REDIS_PASSWORD"
    assert option(args, "--appendonly") == ["yes"]
    assert option(args, "--maxmemory-policy") == ["noeviction"]
    # A limit, so that a full Redis refuses writes (and facepipe pauses) before the host runs out.
    assert interpolate(option(args, "--maxmemory")[0], {}) == "2gb"
    assert interpolate(option(args, "--maxmemory")[0], {"REDIS_MAXMEMORY": "512mb"}) == "512mb"
    # The healthcheck pings with the password (REDISCLI_AUTH or -a), not unauthenticated.
    check = healthcheck_command(redis)
    assert "redis-cli" in check and "ping" in check
    auth = environment(redis).get("REDISCLI_AUTH", "")
    assert "REDIS_PASSWORD" in auth or re.search(r"-a\s+\S*REDIS", check), check
    assert any(volume(v)[1] == "/data" for v in redis.get("volumes", [])), "no volume for /data"


def test_flower_has_basic_auth_and_waits_for_redis(services: dict[str, Any]) -> None:
    flower = services["flower"]
    args = argv(flower["command"])
    assert args[:4] == ["celery", "-A", "tasks", "flower"]
    auth = option(args, "--basic-auth", "--basic_auth")
    assert len(auth) == 1
    assert [m.group(1) for m in VAR_REF.finditer(auth[0])] == ["FLOWER_USER", "FLOWER_PASSWORD"]
    assert any(str(p).split(":")[-1] == "5555" for p in flower["ports"])
    assert flower["depends_on"]["redis"]["condition"] == "service_healthy"


def test_writer_is_one_process_never_scaled(services: dict[str, Any]) -> None:
    writer = services["writer"]
    args = argv(writer["command"])
    assert option(args, "-c", "--concurrency") == ["1"]
    assert int((writer.get("deploy") or {}).get("replicas", 1)) <= 1
    assert int(writer.get("scale", 1)) <= 1
    text = COMPOSE_FILE.read_text() + COMPOSE_README.read_text()
    assert re.search(r"writer.{0,80}never scal", text, re.I | re.S), "the writer rule is not documented"


def test_worker_commands_cover_every_queue_once(services: dict[str, Any]) -> None:
    covered = []
    for name, svc in worker_services(services).items():
        args = argv(svc["command"])
        assert args[:4] == ["celery", "-A", "tasks", "worker"], (name, args)
        queues = option(args, "-Q", "--queues")
        assert len(queues) == 1 and queues[0] in QUEUES, (name, queues)
        covered.append(queues[0])
        assert option(args, "-c", "--concurrency"), f"{name}: no -c"
        nodes = option(args, "-n", "--hostname")
        assert len(nodes) == 1 and nodes[0].endswith("@%h"), (name, nodes)
        # The healthcheck pings this very node: %h in the worker is $HOSTNAME in the container.
        check = healthcheck_command(svc)
        assert "celery -A tasks inspect ping" in check, check
        assert nodes[0].replace("%h", "$$HOSTNAME") in check, (nodes[0], check)
    assert sorted(covered) == sorted(QUEUES), covered


def test_workers_share_broker_settings_and_video_paths(services: dict[str, Any]) -> None:
    for name in (*WORKERS, "flower"):
        svc = services[name]
        env_file = svc["env_file"]
        assert ".env" in ([env_file] if isinstance(env_file, str) else env_file), name
        env = environment(svc)
        broker = VAR_REF.sub(lambda m: "${" + m.group(1) + "}", env["FACEPIPE_BROKER_URL"])
        assert broker == "redis://:${REDIS_PASSWORD}@redis:6379/0", (name, broker)
        assert svc["depends_on"]["redis"]["condition"] == "service_healthy", name
    for name in WORKERS:
        svc = services[name]
        assert "FACEPIPE_ORT_THREADS" in environment(svc), name
        mounts = [volume(v) for v in svc["volumes"]]
        videos = [m for m in mounts if "VIDEO_DIR" in m[0]]
        assert videos, f"{name}: no video volume"
        source, target, mode = videos[0][0], videos[0][1], videos[0][2:]
        # Same path inside as outside (tasks carry absolute paths), and read-only.
        assert VAR_REF.fullmatch(source).group(1) == VAR_REF.fullmatch(target).group(1), videos
        assert mode == ["ro"], videos
        for var in ("OUTPUT_DIR", "CROPS_DIR"):
            assert any(var in m[0] and var in m[1] and m[2:] != ["ro"] for m in mounts), (name, var)
        healthcheck = svc["healthcheck"]
        assert healthcheck.get("interval") and healthcheck.get("timeout"), name


def test_tls_overlay_is_compose_redis_on_tls_only_and_every_client_verifies_it(
    services: dict[str, Any],
) -> None:
    """compose/tls.yaml: Redis's command is compose.yaml's plus TLS (plain port off), and every
    facepipe service gets rediss:// and the CA, nothing else changed."""
    overlay = yaml.safe_load(TLS_FILE.read_text())["services"]
    plain, tls = argv(services["redis"]["command"]), argv(overlay["redis"]["command"])
    assert tls[: len(plain)] == plain, (
        "tls.yaml's redis command is no longer compose.yaml's: keep them in step"
    )
    extra = tls[len(plain) :]
    assert option(extra, "--port") == ["0"] and option(extra, "--tls-port") == ["6379"], extra
    assert option(extra, "--tls-auth-clients") == ["no"], extra
    files = {option(extra, name)[0] for name in ("--tls-cert-file", "--tls-key-file", "--tls-ca-cert-file")}
    assert all(f.startswith("/tls/") for f in files), files
    assert any(volume(v)[1] == "/tls" and volume(v)[2:] == ["ro"] for v in overlay["redis"]["volumes"])
    assert "--tls" in healthcheck_command(overlay["redis"]) and "--cacert /tls/ca.crt" in healthcheck_command(
        overlay["redis"]
    )
    clients = {name for name, svc in services.items() if name != "redis"}
    assert set(overlay) == clients | {"redis"}, sorted(overlay)
    for name in clients:
        env = environment(overlay[name])
        for var in ("FACEPIPE_BROKER_URL", "FACEPIPE_BROKER"):
            broker = VAR_REF.sub(lambda m: "${" + m.group(1) + "}", env[var])
            assert broker == "rediss://:${REDIS_PASSWORD}@redis:6379/0", (name, var, broker)
        assert env["FACEPIPE_TLS_CA_CERTS"] == "/tls/ca.crt", name
        assert [volume(v)[1:] for v in overlay[name]["volumes"]] == [["/tls/ca.crt", "ro"]], name
        assert set(overlay[name]) == {"environment", "volumes"}, name


def test_every_compose_variable_is_in_env_example() -> None:
    used = {m.group(1) for m in VAR_REF.finditer(COMPOSE_FILE.read_text() + TLS_FILE.read_text())}
    documented = set(env_example())
    assert used, "compose.yaml uses no variables?"
    assert used <= documented, sorted(used - documented)
    # The required ones must have a value in the example, or `docker compose up` refuses.
    required = {m.group(1) for m in VAR_REF.finditer(COMPOSE_FILE.read_text()) if m.group(2) in (":?", "?")}
    assert required <= set(env_defaults()), sorted(required - set(env_defaults()))


def code_env_names() -> set[str]:
    """FACEPIPE_* names a worker reads: the fields of the one worker settings model."""
    return {"FACEPIPE_" + field.upper() for field in WorkerSettings.model_fields}


def test_every_facepipe_variable_is_a_real_setting() -> None:
    settings = {"FACEPIPE_" + field.upper() for field in Settings.model_fields}
    from_code = code_env_names()
    assert {"FACEPIPE_BROKER_URL", "FACEPIPE_VISIBILITY_TIMEOUT"} <= from_code, from_code
    example = {name for name in env_example() if name.startswith("FACEPIPE_")}
    for required in ("FACEPIPE_BROKER_URL", "FACEPIPE_ORT_THREADS", "FACEPIPE_VISIBILITY_TIMEOUT"):
        assert required in example, required
    unknown = example - settings - from_code
    assert not unknown, f"not read by facepipe: {sorted(unknown)}"
    for name in ("FACEPIPE_DET_MODEL", "FACEPIPE_REC_MODEL"):
        # An empty value would be parsed as Path('.'), so these may only be commented-out examples.
        assert name in example and not (env_example()[name][1] and not env_example()[name][0]), name


def test_env_example_is_commented_and_values_parse() -> None:
    lines = ENV_EXAMPLE.read_text().splitlines()
    for i, line in enumerate(lines):
        match = ENV_LINE.match(line)
        if match and not match.group(1):
            above = lines[i - 1].strip() if i else ""
            assert above.startswith("#") and not ENV_LINE.match(above), f"{match.group(2)} has no comment"
            assert not match.group(3).startswith(("'", '"', " ")), f"{match.group(2)}: quoted or spaced value"
    # The worker-side FACEPIPE_* values are valid settings.
    env = {k: v for k, v in env_defaults().items() if k.startswith("FACEPIPE_")}
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("FACEPIPE_"):
                mp.delenv(name)
        for name, value in env.items():
            mp.setenv(name, value)
        settings = Settings()
    assert settings.det_model is None and settings.rec_model is None
    assert settings.ort_threads == int(env["FACEPIPE_ORT_THREADS"])
    assert int(env["FACEPIPE_VISIBILITY_TIMEOUT"]) > 0


def test_readme_documents_every_variable_and_the_rules() -> None:
    readme = COMPOSE_README.read_text()
    for name in sorted(set(env_example()) | code_env_names()):
        assert f"`{name}`" in readme or name in readme, f"README lacks {name}"
    for needed in (
        "cp .env.example .env",
        "docker compose up -d",
        "--scale detect=4",
        "pip install .",
        "celery -A tasks worker -Q detect -c 2",
        "FACEPIPE_BROKER_URL=redis://:PW@queuehost:6379/0",
        "same path",
    ):
        assert needed in readme, needed


def test_dockerfile_builds_the_project_as_a_worker_image(compose: dict[str, Any]) -> None:
    build = compose["x-facepipe"]["build"]
    context = (COMPOSE_DIR / build["context"]).resolve()
    assert context == ROOT
    dockerfile = context / build["dockerfile"]
    assert dockerfile == DOCKERFILE and dockerfile.is_file()
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    # python:3.11-slim unless compose passes another base (BASE_IMAGE in .env).
    assert instructions[0] == "ARG BASE_IMAGE=python:3.11-slim"
    assert build["args"]["BASE_IMAGE"] == "${BASE_IMAGE:-python:3.11-slim}"
    froms = [i for i in instructions if i.startswith("FROM ")]
    assert froms and all(i.split()[1] == "${BASE_IMAGE}" for i in froms), froms
    assert any(
        i.startswith("RUN ") and "pip install" in i and i.rstrip().endswith(" .") for i in instructions
    )
    # No `# syntax=` line: BuildKit would pull that frontend image from a registry.
    assert not DOCKERFILE.read_text().lstrip().startswith("# syntax")
    users = [i.split()[1] for i in instructions if i.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    cmd = [i for i in instructions if i.startswith("CMD ")]
    assert cmd and "celery" in cmd[-1] and "worker" in cmd[-1]
    # Every COPY source exists in the build context (pyproject's readme included).
    for instruction in instructions:
        if instruction.startswith("COPY ") and "--from=" not in instruction:
            parts = [p for p in instruction.split()[1:] if not p.startswith("--")]
            for source in parts[:-1]:
                assert (context / source).exists(), source
    # Everything the package build needs is copied.
    copied = " ".join(i for i in instructions if i.startswith("COPY "))
    for needed in ("pyproject.toml", "README.md", "celeryconfig.py", "facepipe", "tasks"):
        assert needed in copied, needed


def _flush_patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """(for .py: a flush call or a flush command as a string of its own; for YAML: the word)."""
    words = "|".join(("FLUSH" + "ALL", "FLUSH" + "DB"))  # spelled apart so this file passes
    python_flush = re.compile(
        rf"""\.\s*(?:{words})\s*\(|(?:execute_command|send_command)\s*\(\s*[bfr]?["'](?:{words})\b"""
        rf"""|[bfr]?["'](?:{words})(?:\s+ASYNC|\s+SYNC)?["']""",
        re.IGNORECASE,
    )
    return python_flush, re.compile(rf"\b(?:{words})\b", re.IGNORECASE)


def test_no_flush_anywhere_in_the_repo() -> None:
    """No .py or .yaml file flushes a database: no FLUSHALL/FLUSHDB call or command.

    A string that merely contains the word (say, a hostile run prefix a test feeds to a task
    to prove it is rejected) is not a flush; a call, a command name on its own as a string
    literal, or the word anywhere in a YAML file is.
    """
    python_flush, yaml_flush = _flush_patterns()
    offenders = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("build", "dist", "node_modules")]
        dirs[:] = [d for d in dirs if not d.endswith(".egg-info") and d != "__pycache__"]
        for file in files:
            if file.endswith((".py", ".yaml", ".yml")):
                pattern = python_flush if file.endswith(".py") else yaml_flush
                path = Path(folder) / file
                for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                    if pattern.search(line):
                        offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, offenders


def test_the_flush_check_catches_flushes() -> None:
    """The patterns are live: they flag real flushes and pass a quoted hostile prefix."""
    python_flush, yaml_flush = _flush_patterns()
    flush, flushdb = "flush" + "all", "FLUSH" + "DB"
    for bad in (
        f"r.{flush}()",
        f"client.{flushdb.lower()}(asynchronous=True)",
        f'r.execute_command("{flushdb}")',
        f'cmd = ["{flush.upper()}"]',
    ):
        assert python_flush.search(bad), bad
    assert not python_flush.search(f'("run", 0, "fp; {flush.upper()}")')
    assert yaml_flush.search(f"command: redis-cli {flush.upper()}")


def _compose_cli() -> list[str] | None:
    """``docker compose`` (v2 plugin) or a ``docker-compose`` binary, if this machine has one."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    return [standalone] if standalone else None


def test_compose_itself_accepts_the_file(tmp_path: Path) -> None:
    """``docker compose config`` (no engine needed) on a copy with .env made from .env.example."""
    cli = _compose_cli()
    if cli is None:
        pytest.skip("neither 'docker compose' nor 'docker-compose' is installed")
    copy = tmp_path / "compose"
    shutil.copytree(COMPOSE_DIR, copy, ignore=shutil.ignore_patterns("*.whl", ".env"))
    shutil.copy(ENV_EXAMPLE, copy / ".env")
    done = subprocess.run([*cli, "config"], cwd=copy, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)
    assert resolved["services"]["writer"]["container_name"] == "facepipe-writer"
    assert resolved["services"]["redis"]["image"] == "redis:7"
    # With TLS, as scripts/cluster.sh up --tls sets it in .env: the two files merge.
    with open(copy / ".env", "a") as env:
        env.write(f"COMPOSE_FILE=compose.yaml:tls.yaml\nTLS_DIR={tmp_path / 'tls'}\n")
    done = subprocess.run([*cli, "config"], cwd=copy, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    merged = yaml.safe_load(done.stdout)["services"]
    assert "--tls-port" in merged["redis"]["command"] and "--requirepass" in merged["redis"]["command"]
    detect = merged["detect"]
    assert str(detect["environment"]["FACEPIPE_BROKER_URL"]).startswith("rediss://"), detect["environment"]
    assert len(detect["volumes"]) == 4, detect["volumes"]  # videos, outputs, crops, and the CA
    (copy / ".env").write_text(ENV_EXAMPLE.read_text())
    version = subprocess.run([*cli, "version"], capture_output=True, text=True, timeout=60).stdout
    if re.search(r"version v?1\.", version):
        # Compose v1 (docker-compose 1.29) checks scale only when it creates containers;
        # tests/test_compose_live.py shows the engine refusing a second writer there.
        return
    # The writer's fixed container_name makes compose itself refuse a second writer.
    text = (copy / "compose.yaml").read_text().replace("replicas: 1", "replicas: 2")
    (copy / "compose.yaml").write_text(text)
    done = subprocess.run([*cli, "config", "-q"], cwd=copy, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "container_name" in done.stderr, done.stderr


# ------------------------------------------------------------------------ live check


def _stop_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _local(args: list[str]) -> list[str]:
    """A compose ``celery ...`` command line as this interpreter's ``python -m celery ...``."""
    assert args[0] == "celery", args
    return [sys.executable, "-m", "celery", *args[1:]]


def test_worker_commands_run_consume_their_queue_and_pass_their_healthcheck(
    services: dict[str, Any], server, tmp_path: Path
) -> None:
    """Each worker service's command, as compose would run it, on the test server."""
    from celery import Celery

    defaults = env_defaults()
    hostname = socket.gethostname()  # what %h expands to, and $HOSTNAME in a container
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEPIPE_")}
    env.update(defaults)  # env_file: .env
    commands: dict[str, list[str]] = {}
    checks: dict[str, str] = {}
    nodes: dict[str, str] = {}
    for name in WORKERS:
        svc = services[name]
        env.update({k: interpolate(v, defaults) for k, v in environment(svc).items()})
        args = [interpolate(a, defaults) for a in argv(svc["command"])]
        commands[name] = _local(args)
        nodes[name] = option(args, "-n", "--hostname")[0].replace("%h", hostname)
        check = interpolate(healthcheck_command(svc), defaults)
        assert check.startswith("celery "), check
        checks[name] = shlex.join([sys.executable, "-m"]) + " " + check
    env["FACEPIPE_BROKER_URL"] = server.url  # the compose network's redis, here
    env["FACEPIPE_ORT_THREADS"] = "1"
    env["HOSTNAME"] = hostname

    app = Celery("compose-test", broker=server.url)
    app.conf.update(accept_content=["json"], broker_connection_retry_on_startup=True)
    procs: dict[str, subprocess.Popen] = {}
    logs = {name: tmp_path / f"{name}.log" for name in WORKERS}
    try:
        for name in WORKERS:
            with open(logs[name], "wb") as log:
                procs[name] = subprocess.Popen(
                    commands[name],
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )

        def tails() -> str:
            return "\n".join(f"--- {n}:\n{logs[n].read_text(errors='replace')[-1500:]}" for n in WORKERS)

        waiting = set(nodes.values())
        deadline = time.monotonic() + 25
        while waiting and time.monotonic() < deadline:
            for name, proc in procs.items():
                assert proc.poll() is None, f"{name} worker exited with {proc.returncode}\n{tails()}"
            for reply in app.control.ping(destination=sorted(waiting), timeout=0.5):
                waiting -= set(reply)
        assert not waiting, f"no ping reply from {sorted(waiting)}\n{tails()}"

        queues = app.control.inspect(destination=list(nodes.values()), timeout=3).active_queues() or {}
        for name, node in nodes.items():
            assert [q["name"] for q in queues.get(node, [])] == [name], (node, queues.get(node), tails())

        # Each service's own healthcheck command (CMD-SHELL, $HOSTNAME set as in a container).
        check_procs = {
            name: subprocess.Popen(
                ["sh", "-c", check],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            for name, check in checks.items()
        }
        for name, proc in check_procs.items():
            try:
                out, _ = proc.communicate(timeout=20)
            finally:
                if proc.poll() is None:
                    _stop_group(proc)
            assert proc.returncode == 0, f"{name} healthcheck failed:\n{out.decode(errors='replace')}"
            assert "pong" in out.decode(errors="replace"), out
    finally:
        for proc in procs.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs.values():
            _stop_group(proc)
        app.close()
