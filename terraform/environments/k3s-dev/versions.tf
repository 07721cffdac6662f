terraform {
  # >= 1.9: the topology module's validation rules refer to other variables.
  required_version = ">= 1.9"

  # THE one place the provider version is pinned; modules state only a minimum.
  # Upgrades: change it here, `terraform init -upgrade`, read the provider's upgrade guide,
  # and check that a plan against the running cluster is empty.
  required_providers {
    proxmox = {
      source  = "bpg/proxmox"
      version = "0.111.1"
    }
  }

  # No backend block: the local backend keeps state in terraform.tfstate beside this file
  # (gitignored). em-infra backs it up before every apply and destroy; see README.md.
}
