terraform {
  required_version = ">= 1.5"

  required_providers {
    proxmox = {
      source = "bpg/proxmox"
      # A minimum only: the environment (terraform/environments/*/versions.tf) pins the exact
      # version, so modules never disagree with it.
      version = ">= 0.111.1"
    }
  }
}
