# A GPU worker is the plain Ubuntu VM plus what PCIe passthrough needs. Reusing vm_ubuntu22
# keeps one definition of the VM; only the hardware differs:
# - q35: PCIe root ports (pcie = true) exist only on this machine type;
# - OVMF + EFI disk: GPU option ROMs and large BARs want UEFI;
# - no balloon device: passthrough pins all guest memory for DMA, so ballooning cannot work;
# - the device by PCI resource mapping (works with API tokens), raw id only when the topology
#   allowed it (allow_raw_pci_ids; needs root@pam).
module "vm" {
  source = "../vm_ubuntu22"

  node     = var.node
  settings = var.settings

  machine            = "q35"
  bios               = "ovmf"
  memory_floating_mb = 0
  hostpci = [{
    mapping = var.node.gpu.mapping
    id      = var.node.gpu.pci_id
  }]
}
