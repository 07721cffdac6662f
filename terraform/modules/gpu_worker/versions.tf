terraform {
  required_version = ">= 1.5"

  required_providers {
    proxmox = {
      source = "bpg/proxmox"
      # A minimum only: the environment pins the exact version.
      version = ">= 0.111.1"
    }
  }
}
