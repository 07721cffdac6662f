#!/usr/bin/env python3
"""Wall time of `em-infra inventory --list` and `ansible-inventory --list` (through the
em_infra_state plugin vs. a static YAML inventory of the same hosts) on generated Terraform states.

Run it through scripts/bench-inventory.sh, which builds the release binary first. Prints figures;
asserts nothing about them.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def outputs_for(count: int) -> dict:
    """A contract state (docs/architecture-freeze.md section 2): 1 control plane, GPU workers for
    a tenth of the rest, workers for the others. Counts beyond the tfvars limits are fine here."""
    gpus = (count - 1) // 10
    workers = count - 1 - gpus
    base = ipaddress.IPv4Address("10.64.0.10")
    nodes = {}

    def add(name, role, slot, gpu):
        nodes[name] = {
            "name": name,
            "role": role,
            "ip": str(base + slot),
            "vm_id": 9100 + slot,
            "proxmox_node": "pve",
            "gpu": gpu,
        }

    add("bench-cp-1", "control_plane", 0, None)
    for i in range(1, workers + 1):
        add(f"bench-worker-{i}", "worker", 10 + i - 1, None)
    for j in range(1, gpus + 1):
        add(f"bench-gpu-{j}", "gpu_worker", 10 + workers + j - 1, {"mapping": f"gpu{j}", "pci_id": None})

    def ips(role):
        return [n["ip"] for n in nodes.values() if n["role"] == role]

    values = {
        "cluster_name": "bench",
        "ssh_user": "ubuntu",
        "control_plane_ips": ips("control_plane"),
        "worker_ips": ips("worker"),
        "gpu_worker_ips": ips("gpu_worker"),
        "nodes": nodes,
    }
    # Terraform also writes each output's type; its shape does not matter to the reader.
    return {name: {"value": value, "type": "dynamic"} for name, value in values.items()}


def static_yaml(inventory: dict) -> str:
    """The same groups, hosts and variables as a static YAML inventory (JSON is valid YAML)."""
    hostvars = inventory["_meta"]["hostvars"]

    def hosts(group):
        return {h: hostvars[h] for h in inventory[group]["hosts"]}

    doc = {
        "all": {
            "children": {
                "k3s_cluster": {
                    "vars": inventory["k3s_cluster"]["vars"],
                    "children": {
                        "control_plane": {"hosts": hosts("control_plane")},
                        "k3s_agents": {
                            "children": {
                                "workers": {"hosts": hosts("workers")},
                                "gpu_workers": {"hosts": hosts("gpu_workers")},
                            }
                        },
                    },
                }
            }
        }
    }
    return json.dumps(doc, indent=1)


def timed(commands: list[list[str]], runs: int, env: dict, cwd: Path) -> list[tuple[float, float]]:
    """Median and minimum wall time in milliseconds of each command. The commands take turns, so
    load from other processes hits them alike; every run must succeed."""
    times: list[list[float]] = [[] for _ in commands]
    for _ in range(runs):
        for command, samples in zip(commands, times, strict=True):
            start = time.perf_counter()
            result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, check=False)
            elapsed = (time.perf_counter() - start) * 1000
            if result.returncode != 0:
                sys.exit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr.decode()}")
            samples.append(elapsed)
    return [(statistics.median(samples), min(samples)) for samples in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repo", type=Path, required=True)
    parser.add_argument("--em-infra", type=Path, required=True)
    parser.add_argument("--ansible-bin-dir", type=Path, required=True)
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--runs", type=int, default=15, help="repetitions of em-infra")
    parser.add_argument("--ansible-runs", type=int, default=7, help="repetitions of ansible-inventory")
    args = parser.parse_args()

    ansible_inventory = args.ansible_bin_dir / "ansible-inventory"
    have_ansible = ansible_inventory.is_file()
    env = dict(os.environ, NO_COLOR="1", EM_INFRA_BIN=str(args.em_infra))
    env.pop("EM_INFRA_TFSTATE", None)
    # Both ansible-inventory variants run with the same enabled plugins, whatever ansible.cfg says.
    env["ANSIBLE_INVENTORY_PLUGINS"] = str(args.repo / "ansible" / "inventory_plugins")
    env["ANSIBLE_INVENTORY_ENABLED"] = "em_infra_state,yaml"

    print(f"em-infra: {args.em_infra}")
    if not have_ansible:
        print(f"ansible-inventory: not found in {args.ansible_bin_dir}; measuring em-infra only")
    print(f"median (min) wall time in ms; em-infra x{args.runs}, ansible-inventory x{args.ansible_runs}\n")
    header = f"{'nodes':>6}  {'state KiB':>9}  {'em-infra --list':>17}"
    if have_ansible:
        header += f"  {'ansible via plugin':>20}  {'ansible static YAML':>20}  {'plugin overhead':>15}"
    print(header)

    with tempfile.TemporaryDirectory(prefix="em-infra-bench-") as tmp_name:
        tmp = Path(tmp_name)
        for size in (int(s) for s in args.sizes.split(",")):
            state = tmp / f"{size}.tfstate"
            state.write_text(json.dumps({"version": 4, "terraform_version": "1.11.4", "serial": 1,
                                         "lineage": "bench", "outputs": outputs_for(size),
                                         "resources": [], "check_results": None}, indent=2))
            em = [str(args.em_infra), "--root", str(args.repo), "inventory", "--list", "--state", str(state)]
            inventory = json.loads(subprocess.run(em, env=env, capture_output=True, check=True).stdout)
            if len(inventory["_meta"]["hostvars"]) != size:
                sys.exit(f"em-infra listed {len(inventory['_meta']['hostvars'])} hosts, expected {size}")
            [(em_median, em_min)] = timed([em], args.runs, env, args.repo)
            line = f"{size:>6}  {state.stat().st_size / 1024:>9.0f}  {em_median:>9.1f} ({em_min:>5.1f})"
            if have_ansible:
                config = tmp / f"bench_{size}.em_infra.yml"
                config.write_text(f"plugin: em_infra_state\nstate_file: {state}\n")
                static = tmp / f"static_{size}.yml"
                static.write_text(static_yaml(inventory))
                (pl_median, pl_min), (st_median, st_min) = timed(
                    [[str(ansible_inventory), "-i", str(config), "--list"],
                     [str(ansible_inventory), "-i", str(static), "--list"]],
                    args.ansible_runs, env, args.repo)
                line += (f"  {pl_median:>11.1f} ({pl_min:>6.1f})  {st_median:>11.1f} ({st_min:>6.1f})"
                         f"  {pl_median - st_median:>+13.1f}ms")
            print(line, flush=True)


if __name__ == "__main__":
    main()
