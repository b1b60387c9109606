"""The deployment files in deploy/: a `ray up` cluster config Ray's own schema accepts, and a
KubeRay RayCluster whose worker groups offer bench slots and a hardware resource the way
`kscout search --target` places workers (one slot per GPU, none on the head)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from search.workers import BENCH_SLOT

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_the_ray_up_config_passes_rays_schema_and_every_bench_node_names_its_hardware():
    from ray.autoscaler._private.util import prepare_config, validate_config
    raw = yaml.safe_load((DEPLOY / "ray-cluster.yaml").read_text())
    validate_config(prepare_config(copy.deepcopy(raw)))     # what `ray up` checks before launching
    types = raw["available_node_types"]
    assert BENCH_SLOT not in types[raw["head_node_type"]]["resources"]    # the head runs the driver, no benchmarks
    bench = {name: t["resources"] for name, t in types.items() if name != raw["head_node_type"]}
    assert bench
    for name, res in bench.items():
        hardware = set(res) - {"CPU", "GPU", "memory", BENCH_SLOT}
        assert len(hardware) == 1, f"{name}: one resource naming its hardware, for --target"
        assert res[BENCH_SLOT] == res.get("GPU", 1) == res[hardware.pop()]   # a slot per GPU (or per CPU machine)
    broken = copy.deepcopy(raw)
    broken["available_node_types"]["h100"]["resorces"] = broken["available_node_types"]["h100"].pop("resources")
    with pytest.raises(Exception, match="resources"):   # the check above can fail
        validate_config(prepare_config(broken))


def test_the_kuberay_cluster_offers_a_bench_slot_per_gpu_and_a_target_per_group():
    rc = yaml.safe_load((DEPLOY / "kuberay-raycluster.yaml").read_text())
    assert rc["apiVersion"] == "ray.io/v1" and rc["kind"] == "RayCluster"
    assert "resources" not in rc["spec"]["headGroupSpec"]["rayStartParams"]
    targets = set()
    for group in rc["spec"]["workerGroupSpecs"]:
        params = group["rayStartParams"]
        # KubeRay passes this to `ray start --resources`: a quoted JSON object, as its docs write it
        resources = json.loads(json.loads(params["resources"]))
        gpus = int(params["num-gpus"])
        (target,) = set(resources) - {BENCH_SLOT}
        assert resources[BENCH_SLOT] == gpus == resources[target]
        limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert gpus == next(v for k, v in limits.items() if k.endswith("/gpu"))   # the pod really gets them
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        targets.add(target)
    assert targets == {"H100", "MI300X"}
