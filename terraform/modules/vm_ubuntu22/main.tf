# One Ubuntu 22.04 VM, a full clone of the cloud-init template, with a static IP.
resource "proxmox_virtual_environment_vm" "this" {
  name        = var.node.name
  node_name   = var.node.proxmox_node
  vm_id       = var.node.vm_id # explicit: avoids the next-free-ID race between parallel clones
  description = "em-infra: ${var.node.role} of k3s cluster ${var.settings.cluster_name}. Managed by Terraform (terraform/environments); changes made here are reverted."
  # Proxmox stores tags sorted; sorting here keeps plans empty.
  tags = sort(distinct(["em-infra", "k3s", var.settings.cluster_name, var.node.role]))

  machine       = var.machine
  bios          = var.bios
  scsi_hardware = "virtio-scsi-single" # one controller per disk: iothread works, fewer clone lock timeouts

  on_boot         = true
  started         = true
  stop_on_destroy = true # destroy must not hang on a guest that ignores ACPI shutdown

  # Top-level integer seconds (this provider has no timeouts block).
  timeout_clone       = 1800
  timeout_create      = 1800
  timeout_start_vm    = 900
  timeout_reboot      = 900
  timeout_shutdown_vm = 600
  timeout_stop_vm     = 300

  clone {
    vm_id        = var.settings.template_vm_id
    node_name    = var.settings.template_node
    datastore_id = var.settings.datastore_id
    full         = true # independent of the template: it can be rebuilt while VMs run
    retries      = var.settings.clone_retries
  }

  agent {
    enabled = true # the template ships qemu-guest-agent; without it create waits agent.timeout
    timeout = var.settings.agent_timeout
    wait_for_ip {
      ipv4 = true # apply returns once cloud-init brought up IPv4, so Ansible can connect next
    }
  }

  cpu {
    cores   = var.node.cores
    sockets = 1
    type    = "x86-64-v2-AES" # portable across hosts, with AES-NI; the provider's recommendation
  }

  memory {
    dedicated = var.node.memory_mb
    floating  = var.memory_floating_mb
  }

  # The cloned boot disk: every attribute that differs from the provider's schema defaults is
  # set, or the defaults would override the template's values (provider docs, "Cloning").
  disk {
    interface    = "scsi0"
    datastore_id = var.settings.datastore_id
    size         = var.node.disk_gb # grows the template's disk; Proxmox refuses to shrink
    discard      = "on"
    iothread     = true
    ssd          = true
  }

  dynamic "efi_disk" {
    for_each = var.bios == "ovmf" ? [1] : []
    content {
      datastore_id      = var.settings.datastore_id
      type              = "4m"
      pre_enrolled_keys = false # no Secure Boot keys: the NVIDIA driver's kernel module is unsigned
    }
  }

  dynamic "hostpci" {
    for_each = var.hostpci
    content {
      device  = "hostpci${hostpci.key}"
      mapping = hostpci.value.mapping
      id      = hostpci.value.id
      pcie    = var.machine == "q35" # PCIe ports exist only on q35
      rombar  = true
    }
  }

  network_device {
    bridge  = var.settings.network_bridge
    vlan_id = var.settings.vlan_id
    model   = "virtio"
  }

  initialization {
    datastore_id = var.settings.datastore_id
    # No `upgrade`: unset, the provider sends no ciupgrade and the clone keeps the template's
    # ciupgrade = 0 (no apt upgrade at first boot; docs/runbooks.md, First boot). Setting it here
    # would change the user data, and so the cloud-init instance-id (qemu-server Cloudinit.pm:
    # sha1 of user and network data), of running VMs cloned from an older template.

    ip_config {
      ipv4 {
        address = "${var.node.ip}/${var.settings.prefix_length}"
        gateway = var.settings.gateway
      }
    }

    dns {
      servers = var.settings.dns_servers
    }

    user_account {
      username = var.settings.ssh_user
      keys     = var.settings.ssh_public_keys
    }
  }

  # Ubuntu cloud images panic while growing the root disk without a serial device.
  serial_device {
    device = "socket"
  }

  operating_system {
    type = "l26"
  }

  lifecycle {
    ignore_changes = [
      # Every clone.* argument forces replacement. Rebuilding the template under a new ID must
      # not destroy a running cluster: the template only matters when a VM is created.
      clone,
      # The SSH user and keys are cloud-init first-boot data. Applying from another workstation
      # (another ~/.ssh key) must not rewrite the cloud-init drive, which changes the instance-id
      # and makes cloud-init re-run first-boot modules on the next reboot.
      initialization[0].user_account,
    ]
  }
}
