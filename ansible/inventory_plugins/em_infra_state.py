# Copyright EM-Infra contributors
# SPDX-License-Identifier: Apache-2.0
"""Ansible inventory plugin: the EM-Infra cluster from a local Terraform state file.

The mapping from Terraform outputs to groups and host variables has one implementation, the
`em-infra` binary (`em-infra inventory --list --state FILE`); this plugin only runs it and loads
the executable-inventory JSON it prints.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: em_infra_state
short_description: EM-Infra k3s cluster hosts from local Terraform state
description:
  - Runs C(em-infra inventory --list --state STATE_FILE) and adds the groups, hosts and variables
    it prints (docs/architecture-freeze.md section 3). No terraform binary is needed.
  - "Groups: C(k3s_cluster) (children C(control_plane), C(k3s_agents); var C(em_cluster_name)),
    C(k3s_agents) (children C(workers), C(gpu_workers)). Host vars: C(ansible_host), C(ansible_user),
    C(em_role), C(em_vm_id), C(em_proxmox_node), C(em_gpu)."
  - Config files must be named C(terraform_*.yml), C(terraform_*.yaml), C(*.em_infra.yml) or
    C(*.em_infra.yaml).
options:
  plugin:
    description: Marks the file as a configuration of this plugin.
    required: true
    type: str
    choices: [em_infra_state]
  state_file:
    description:
      - The Terraform state file (format version 4) to read.
      - A relative path is relative to the directory of this configuration file.
      - The environment variable E(EM_INFRA_TFSTATE), when set and non-empty, wins over this option
        (a relative value is relative to the current directory).
    required: true
    type: str
  executable:
    description:
      - The em-infra binary to run.
      - Default, in order, the first that exists - C(em-infra) on E(PATH),
        C(<repo>/target/release/em-infra), C(<repo>/target/debug/em-infra), where C(<repo>) is
        the repository holding this plugin.
    type: str
    env:
      - name: EM_INFRA_BIN
  timeout:
    description: Seconds to wait for em-infra.
    type: int
    default: 60
"""

EXAMPLES = r"""
# ansible/inventory/terraform_inventory.yml
plugin: em_infra_state
state_file: ../../terraform/environments/k3s-dev/terraform.tfstate

# Another state file for one command, without editing the config:
#   EM_INFRA_TFSTATE=/path/to/terraform.tfstate ansible-inventory -i ansible/inventory/terraform_inventory.yml --list
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin

# ansible/inventory_plugins/em_infra_state.py -> the repository root.
REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_SUFFIXES = (".em_infra.yml", ".em_infra.yaml")
CONFIG_PREFIX = "terraform_"
CONFIG_EXTENSIONS = (".yml", ".yaml")


class InventoryModule(BaseInventoryPlugin):
    NAME = "em_infra_state"

    def verify_file(self, path):
        """Claim only config files named terraform_*.y(a)ml or *.em_infra.y(a)ml."""
        if not super().verify_file(path):
            return False
        name = os.path.basename(path)
        if name.endswith(CONFIG_SUFFIXES):
            return True
        return name.startswith(CONFIG_PREFIX) and name.endswith(CONFIG_EXTENSIONS)

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        state_file = self._state_file(path)
        data = self._run_em_infra(state_file)
        self._load(data, state_file)

    def _state_file(self, config_path):
        override = os.environ.get("EM_INFRA_TFSTATE", "")
        if override:
            return os.path.abspath(os.path.expanduser(override))
        configured = os.path.expanduser(str(self.get_option("state_file")))
        config_dir = os.path.dirname(os.path.abspath(config_path))
        return os.path.normpath(os.path.join(config_dir, configured))

    def _executable(self):
        configured = self.get_option("executable")
        if configured:
            found = shutil.which(os.path.expanduser(str(configured)))
            if not found:
                raise AnsibleParserError(
                    f"em_infra_state: executable {configured!r} (option executable / EM_INFRA_BIN) "
                    "is not an executable file; build it with `cargo build --release`"
                )
            return found
        candidates = [
            shutil.which("em-infra"),
            REPO_ROOT / "target" / "release" / "em-infra",
            REPO_ROOT / "target" / "debug" / "em-infra",
        ]
        for candidate in candidates:
            if candidate and os.access(candidate, os.X_OK) and os.path.isfile(candidate):
                return str(candidate)
        raise AnsibleParserError(
            "em_infra_state: no em-infra binary found (EM_INFRA_BIN, em-infra on PATH, "
            f"{REPO_ROOT}/target/release/em-infra, {REPO_ROOT}/target/debug/em-infra); "
            f"build it with `cargo build --release` in {REPO_ROOT}"
        )

    def _run_em_infra(self, state_file):
        command = [
            self._executable(),
            "--root",
            str(REPO_ROOT),
            "inventory",
            "--list",
            "--state",
            state_file,
        ]
        env = dict(os.environ, NO_COLOR="1")
        try:
            result = subprocess.run(  # noqa: S603 - fixed argv, no shell
                command,
                capture_output=True,
                text=True,
                env=env,
                timeout=self.get_option("timeout"),
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            raise AnsibleParserError(f"em_infra_state: running {command[0]} failed: {err}") from err
        if result.returncode != 0:
            message = result.stderr.strip() or f"no message on stderr, stdout: {result.stdout[:500]!r}"
            raise AnsibleParserError(
                f"em_infra_state: `em-infra inventory --list --state {state_file}` exited "
                f"{result.returncode}: {message}"
            )
        try:
            return json.loads(result.stdout)
        except ValueError as err:
            raise AnsibleParserError(
                f"em_infra_state: em-infra printed invalid JSON for {state_file}: {err}"
            ) from err

    def _load(self, data, state_file):
        """Add groups, hosts and variables from executable-inventory JSON (em-infra's --list)."""
        if not isinstance(data, dict):
            raise AnsibleParserError(f"em_infra_state: em-infra printed no JSON object for {state_file}")
        hostvars = data.get("_meta", {}).get("hostvars", {})
        groups = {name: body for name, body in data.items() if name != "_meta"}
        for group in groups:
            self.inventory.add_group(group)
        for group, body in groups.items():
            for child in body.get("children", []):
                self.inventory.add_group(child)
                self.inventory.add_child(group, child)
            for host in body.get("hosts", []):
                self.inventory.add_host(host, group=group)
            for key, value in body.get("vars", {}).items():
                self.inventory.set_variable(group, key, value)
        for host, variables in hostvars.items():
            self.inventory.add_host(host)
            for key, value in variables.items():
                self.inventory.set_variable(host, key, value)
