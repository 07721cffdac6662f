# Configured only from the environment, with the provider's own variable names, so one
# `export` serves Terraform and em-infra and no secret is ever written to a file here:
#   PROXMOX_VE_ENDPOINT   https://<host>:8006/ (no /api2/json suffix)
#   PROXMOX_VE_API_TOKEN  <user>@<realm>!<token-id>=<secret>   (recommended), or
#   PROXMOX_VE_USERNAME / PROXMOX_VE_PASSWORD                   (root@pam; needed only for raw gpu pci_id)
#   PROXMOX_VE_INSECURE   true while the host's certificate is not trusted here (better: add
#                         /etc/pve/pve-root-ca.pem to the system trust store, which the provider uses)
# No ssh block: nothing here uploads snippets or imports disks, so the provider never needs SSH.
provider "proxmox" {}
