# expect: gpu_workers
# mistake: BDF in upper case (lspci -D prints lower case)
cluster_name      = "lab"
network_cidr      = "10.231.0.0/24"
gateway           = "10.231.0.1"
first_host_offset = 11
worker_count      = 2
gpu_workers       = [{ pci_id = "0000:0A:00.0" }]
ssh_user          = "root"
vm_id_base        = 9100
template_vm_id    = 9000
allow_raw_pci_ids = true
