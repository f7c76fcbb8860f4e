"""The Helm chart renders, lints strictly, validates against Kubernetes 1.29 and 1.33 schemas, and
has the structure docs/deployment.md promises (no cluster: helm-python-sdk + kubernetes-validate)."""

from __future__ import annotations

import pytest

from tests.deploy.chart import (
    CHART_DIR,
    CRDS_WITHOUT_SCHEMA,
    KUBE_VERSIONS,
    NAMESPACE,
    ROOT,
    VALUES_MATRIX,
    chart_values,
    containers,
    manifests,
    one,
    render,
    require,
)

helm_python = require("helm_python")
kubernetes_validate = require("kubernetes_validate")

MATRIX = pytest.mark.parametrize("values", list(VALUES_MATRIX.values()), ids=list(VALUES_MATRIX))
WARNING = 2  # helm's lint severities: 1 info, 2 warning, 3 error


@MATRIX
@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_lints_strictly(values, kube_version):
    result = helm_python.lint(CHART_DIR, chart_values(values), strict=True, namespace=NAMESPACE, kube_version=f"v{kube_version}.0")
    assert result["errors"] == []
    assert [m for m in result["messages"] if m["severity"] >= WARNING] == []


@MATRIX
@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_every_manifest_validates(values, kube_version):
    docs = render(values)
    assert docs
    for path, doc in docs:
        key = (doc["apiVersion"], doc["kind"])
        if key in CRDS_WITHOUT_SCHEMA:
            continue
        try:
            kubernetes_validate.validate(doc, kube_version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            pytest.fail(f"{path}: no Kubernetes {kube_version} schema for {key}")
        except kubernetes_validate.ValidationError as err:
            pytest.fail(f"{path} ({doc['kind']} {doc['metadata']['name']}) invalid on {kube_version}: {err.message}")


def test_only_listed_crds_are_rendered_and_only_on_request():
    kinds = {(d["apiVersion"], d["kind"]) for _, d in render({})}
    assert not kinds & CRDS_WITHOUT_SCHEMA, "monitors are off by default"
    kinds = {(d["apiVersion"], d["kind"]) for _, d in render(VALUES_MATRIX["monitoring-pvc-restart"])}
    assert CRDS_WITHOUT_SCHEMA <= kinds


@MATRIX
def test_every_container_has_probes_resources_and_a_locked_down_security_context(values):
    for kind in ("Deployment",):
        for deployment in manifests(values, kind):
            pod = deployment["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True
            assert pod["automountServiceAccountToken"] is False
            for container in containers(pod):
                name = f"{deployment['metadata']['name']}/{container['name']}"
                for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                    assert probe in container, f"{name} lacks {probe}"
                assert container["resources"]["requests"] and container["resources"]["limits"], name
                context = container["securityContext"]
                assert context["runAsNonRoot"] is True and context["allowPrivilegeEscalation"] is False, name
                assert context["readOnlyRootFilesystem"] is True, name
                assert context["capabilities"]["drop"] == ["ALL"], name
                assert ":latest" not in container["image"] and ":" in container["image"], name
                assert "preStop" in container["lifecycle"], name


def test_triton_requests_equal_limits_for_the_gpu_by_default():
    triton = one({"triton": {"extraArgs": ["--log-verbose=1"]}}, "Deployment", "triton")["spec"]["template"]["spec"]["containers"][0]
    assert triton["args"][0].endswith(" '--log-verbose=1'"), "extra args reach tritonserver, shell-quoted"
    resources = triton["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == resources["requests"]["nvidia.com/gpu"] == 1
    assert "--model-config-name=gpu" in triton["args"][0]
    assert "nvcr.io" not in triton["image"]  # our image FROM NVIDIA's, with the model repository
    gateway_args = one({}, "Deployment", "gateway")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--length-buckets=16,32,64,128" in gateway_args  # libtorch batches equal shapes only


def test_cpu_mode_asks_for_no_gpu_and_runs_the_projects_triton():
    pod = one(VALUES_MATRIX["cpu-only-anonymous"], "Deployment", "triton")["spec"]["template"]["spec"]
    triton = pod["containers"][0]
    for section in ("requests", "limits"):
        assert "nvidia.com/gpu" not in triton["resources"][section]
    assert "tolerations" not in pod
    assert "triton-cpu" in triton["image"]
    assert "--triton-control-key-file=/etc/moderation/triton-control/key" in triton["args"]
    gateway_args = one(VALUES_MATRIX["cpu-only-anonymous"], "Deployment", "gateway")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not any(a.startswith("--length-buckets") for a in gateway_args)


def test_triton_probes_and_graceful_termination():
    spec = one({}, "Deployment", "triton")["spec"]["template"]["spec"]
    triton = spec["containers"][0]
    assert triton["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert triton["startupProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert triton["readinessProbe"]["httpGet"]["path"] == "/v2/models/toxicity/ready"
    startup = triton["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120, "model load may take minutes"
    assert "--exit-timeout-secs=30" in triton["args"][0]
    sleep_s = int(triton["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert spec["terminationGracePeriodSeconds"] > sleep_s + 30, "grace covers preStop and Triton's exit timeout"


def test_gateway_grace_covers_prestop_and_in_flight_calls():
    spec = one({}, "Deployment", "gateway")["spec"]["template"]["spec"]
    gateway = spec["containers"][0]
    sleep_s = int(gateway["lifecycle"]["preStop"]["exec"]["command"][-1])
    grace_s = next(int(a.split("=", 1)[1]) for a in gateway["args"] if a.startswith("--grace-s="))
    assert spec["terminationGracePeriodSeconds"] > sleep_s + grace_s


def test_gateway_args_use_the_shared_flag_names_and_mounted_files():
    args = one({}, "Deployment", "gateway")["spec"]["template"]["spec"]["containers"][0]["args"]
    flags = dict(a.split("=", 1) for a in args)
    assert flags["--triton-url"] == f"dns:///mod-moderation-triton.{NAMESPACE}.svc.cluster.local:8001"
    assert flags["--metrics-listen-address"] == "0.0.0.0:9464"
    assert flags["--admin-listen-address"] == "0.0.0.0:50052"
    assert flags["--version-file"] == "/etc/moderation/version/version"
    assert flags["--policy-path"] == "/etc/moderation/policy/policy.toml"
    assert flags["--admin-token-file"] and flags["--triton-control-key-file"]
    from gateway.settings import Settings  # every flag the chart passes is one the gateway knows
    known = {"--" + f.replace("_", "-") for f in Settings.__dataclass_fields__}
    shared = {"--metrics-listen-address", "--log-format", "--version-file", "--triton-control-key-file",
              "--tls-cert", "--tls-key", "--tls-ca", "--tls-client-auth", "--api-keys-file"}
    for values in VALUES_MATRIX.values():
        args = one(values, "Deployment", "gateway")["spec"]["template"]["spec"]["containers"][0]["args"]
        unknown = {a.split("=", 1)[0] for a in args} - known - shared
        assert not unknown, f"flags neither in gateway/settings.py nor in COMMON's shared names: {unknown}"


def test_tls_mounts_the_secret_and_passes_the_files():
    values = VALUES_MATRIX["tls-on"]
    pod = one(values, "Deployment", "gateway")["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    assert "--tls-cert=/etc/moderation/tls/tls.crt" in args and "--tls-client-auth=require" in args
    assert "--api-keys-file=/etc/moderation/api-keys/api-keys.toml" in args
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "moderation-tls"
    assert "args" in one({}, "Deployment", "gateway")["spec"]["template"]["spec"]["containers"][0]
    assert not any(a.startswith("--tls-") for a in one({}, "Deployment", "gateway")["spec"]["template"]["spec"]["containers"][0]["args"])


def test_policy_and_version_are_directory_mounts_so_changes_reach_the_pods():
    pod = one({}, "Deployment", "gateway")["spec"]["template"]["spec"]
    for mount in pod["containers"][0]["volumeMounts"]:
        assert "subPath" not in mount, "subPath mounts never see ConfigMap or Secret updates"
    config_maps = {c["metadata"]["name"]: c for c in manifests({}, "ConfigMap")}
    assert config_maps["mod-moderation-model-version"]["data"]["version"] == "5"
    shipped = (ROOT / "gateway" / "default_policy.toml").read_text()
    assert config_maps["mod-moderation-policy"]["data"]["policy.toml"].strip() == shipped.strip()
    assert (CHART_DIR / "files" / "policy.toml").read_text() == shipped, "the chart ships the gateway's default policy"


def test_restart_rollout_pins_the_version_and_rolls_pods_on_change():
    values = VALUES_MATRIX["monitoring-pvc-restart"]
    template = one(values, "Deployment", "gateway")["spec"]["template"]
    assert "--model-version=5" in template["spec"]["containers"][0]["args"]
    changed = {**values, "model": {"name": "toxicity", "version": "6"}}
    new_template = one(changed, "Deployment", "gateway")["spec"]["template"]
    key = "checksum/model-version"
    assert template["metadata"]["annotations"][key] != new_template["metadata"]["annotations"][key]
    # the default (versionFile) switches in place: no checksum, so no restart
    assert key not in one({}, "Deployment", "gateway")["spec"]["template"]["metadata"]["annotations"]


def test_hpa_is_autoscaling_v2_on_the_gateway():
    (hpa,) = manifests({}, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "mod-moderation-gateway"}
    assert "replicas" not in one({}, "Deployment", "gateway")["spec"], "the HPA owns the replica count"
    assert manifests(VALUES_MATRIX["one-replica"], "HorizontalPodAutoscaler") == []


def test_pdbs_cover_both_and_never_block_a_drain_of_one_replica():
    pdbs = {p["metadata"]["labels"]["app.kubernetes.io/component"]: p for p in manifests({}, "PodDisruptionBudget")}
    assert set(pdbs) == {"gateway", "triton"}
    for component, pdb in pdbs.items():
        assert pdb["apiVersion"] == "policy/v1"
        assert pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == component
    for pdb in manifests(VALUES_MATRIX["one-replica"], "PodDisruptionBudget"):
        assert pdb["spec"].get("minAvailable", 0) < 1, "minAvailable 1 of 1 pod blocks every node drain"


def test_network_policies_let_only_gateways_reach_triton_grpc_and_prometheus_the_metrics():
    triton = one({}, "NetworkPolicy", "triton")["spec"]
    assert triton["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "triton"
    assert triton["policyTypes"] == ["Ingress"]
    rules = {rule["ports"][0]["port"]: rule["from"] for rule in triton["ingress"]}
    assert set(rules) == {"grpc", "metrics"}, "nothing else is reachable from other pods"
    (gateways,) = rules["grpc"]
    assert gateways["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "gateway"
    assert "namespaceSelector" not in gateways  # the release's own namespace only
    (prometheus,) = rules["metrics"]
    assert prometheus["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
    assert prometheus["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}
    gateway = one({}, "NetworkPolicy", "gateway")["spec"]
    rules = {rule["ports"][0]["port"]: rule.get("from") for rule in gateway["ingress"]}
    assert rules["metrics"] == [prometheus]
    assert rules["admin"] == [{"podSelector": {"matchLabels": {"moderation/admin-client": "true"}}}]
    # Helm merges maps with the defaults: null removes a default label (docs/deployment.md)
    custom = {"networkPolicy": {"prometheus": {
        "namespaceSelector": {"matchLabels": {"team": "obs", "kubernetes.io/metadata.name": None}},
        "podSelector": {"matchLabels": {"app": "vm", "app.kubernetes.io/name": None}}}}}
    (rule,) = [r for r in one(custom, "NetworkPolicy", "triton")["spec"]["ingress"] if r["ports"][0]["port"] == "metrics"]
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"team": "obs"}}, "podSelector": {"matchLabels": {"app": "vm"}}}]


def test_services_headless_triton_and_separate_admin():
    services = {s["metadata"]["name"]: s["spec"] for s in manifests({}, "Service")}
    triton = services["mod-moderation-triton"]
    assert triton["clusterIP"] == "None"
    assert {p["name"]: p["port"] for p in triton["ports"]} == {"http": 8000, "grpc": 8001, "metrics": 8002}
    assert {p["name"]: p["port"] for p in services["mod-moderation-gateway"]["ports"]} == {"grpc": 50051, "metrics": 9464}
    admin = services["mod-moderation-gateway-admin"]
    assert admin["type"] == "ClusterIP" and [p["port"] for p in admin["ports"]] == [50052]


def test_existing_secrets_replace_the_generated_ones():
    values = VALUES_MATRIX["monitoring-pvc-restart"]
    assert manifests(values, "Secret") == []
    volumes = {v["name"]: v for v in one(values, "Deployment", "gateway")["spec"]["template"]["spec"]["volumes"]}
    assert volumes["admin-token"]["secret"]["secretName"] == "admin"
    assert volumes["triton-control"]["secret"]["secretName"] == "control"
    assert volumes["model-repository"]["persistentVolumeClaim"] == {"claimName": "models", "readOnly": True}
    generated = {s["metadata"]["name"]: s for s in manifests({}, "Secret")}
    assert set(generated) == {"mod-moderation-admin-token", "mod-moderation-triton-control", "mod-moderation-api-keys"}


@pytest.mark.parametrize("bad", [
    {"triton": {"mode": "tpu"}},
    {"gateway": {"image": {"tag": "latest"}}},
    {"unknown": 1},
    {"modelRepository": {"source": "pvc"}},
    {"secrets": {"tls": {"enabled": True, "clientAuth": "optional"}}},
    {"model": {"name": "toxicity", "version": "three"}},
], ids=["mode", "latest-tag", "unknown-key", "pvc-without-claim", "tls-optional", "version"])
def test_schema_rejects_bad_values(bad):
    with pytest.raises(helm_python.HelmValuesError):
        helm_python.Chart.load(CHART_DIR).render(bad, name="mod", namespace=NAMESPACE)


def test_tls_without_a_secret_fails_with_a_clear_message():
    with pytest.raises(helm_python.HelmError, match="existingSecret is required"):
        helm_python.Chart.load(CHART_DIR).render({"secrets": {"tls": {"enabled": True}}}, name="mod", namespace=NAMESPACE)


def test_a_digest_replaces_the_tag():
    digest = "sha256:" + "ab" * 32
    values = {"gateway": {"image": {"digest": digest}}, "triton": {"image": {"gpu": {"repository": "r/t", "tag": "1", "digest": digest}}}}
    assert one(values, "Deployment", "gateway")["spec"]["template"]["spec"]["containers"][0]["image"].endswith("@" + digest)
    assert one(values, "Deployment", "triton")["spec"]["template"]["spec"]["containers"][0]["image"] == "r/t@" + digest
    with pytest.raises(helm_python.HelmValuesError):
        helm_python.Chart.load(CHART_DIR).render({"gateway": {"image": {"digest": "abc"}}}, name="mod", namespace=NAMESPACE)


def test_docs_list_every_chart_value():
    import yaml

    def leaves(tree, prefix=""):
        for key, value in tree.items():
            path = f"{prefix}.{key}" if prefix else key
            if isinstance(value, dict) and value and key not in ("requests", "limits", "namespaceSelector", "podSelector"):
                yield from leaves(value, path)
            else:
                yield path

    docs = (ROOT / "docs" / "deployment.md").read_text()
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    missing = [path for path in leaves(values) if f"`{path}`" not in docs]
    assert not missing, f"docs/deployment.md's values table lacks {missing}"


def test_triton_ages_connections_so_gateways_find_new_replicas():
    gpu = one({}, "Deployment", "triton")["spec"]["template"]["spec"]["containers"][0]["args"][0]
    assert "--grpc-max-connection-age=300000" in gpu and "--grpc-max-connection-age-grace=30000" in gpu
    cpu = one(VALUES_MATRIX["cpu-only-anonymous"], "Deployment", "triton")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--triton-max-connection-age-s=300" in cpu
    off = one({"triton": {"maxConnectionAgeSeconds": 0}}, "Deployment", "triton")["spec"]["template"]["spec"]["containers"][0]
    assert "max-connection-age" not in off["args"][0]


def test_refuses_anonymous_gateway_unless_asked():
    """The gateway listens on the pod network: without API keys or required client certificates
    the chart does not render, so nobody ships an open gateway by leaving values at defaults."""
    with pytest.raises(Exception, match="allowAnonymous"):
        helm_python.Chart.load(CHART_DIR).render({}, name="mod", namespace=NAMESPACE)
    anonymous = one(VALUES_MATRIX["cpu-only-anonymous"], "Deployment", "gateway")["spec"]["template"]["spec"]
    assert "--allow-anonymous=true" in anonymous["containers"][0]["args"]
    assert not any(a.startswith("--api-keys-file=") for a in anonymous["containers"][0]["args"])
    keyed = one({}, "Deployment", "gateway")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--allow-anonymous=true" not in keyed
    assert "--api-keys-file=/etc/moderation/api-keys/api-keys.toml" in keyed
    mtls = {"secrets": {"apiKeys": {"enabled": False}, "tls": {"enabled": True, "existingSecret": "tls", "clientAuth": "require"}}}
    assert "--allow-anonymous=true" not in one(mtls, "Deployment", "gateway")["spec"]["template"]["spec"]["containers"][0]["args"]


def test_secret_files_and_triton_http_fit_the_binaries():
    """Secret volumes are 0440 with an fsGroup, which the gateway and moderation-triton accept only
    when told; CPU Triton's HTTP is off unless asked for, and its probes need it."""
    gateway_args = one({}, "Deployment", "gateway")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--secret-files-group-readable=true" in gateway_args
    cpu = one(VALUES_MATRIX["cpu-only-anonymous"], "Deployment", "triton")["spec"]["template"]["spec"]
    assert {"--secret-files-group-readable", "--triton-http"} <= set(cpu["containers"][0]["args"])
    from gateway.triton_cli import build_parser

    parsed = build_parser().parse_args(cpu["containers"][0]["args"])  # moderation-triton's own parser
    assert parsed.triton_http and parsed.secret_files_group_readable
