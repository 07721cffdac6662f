# expect: worker_size
# mistake: a 5 GiB disk is below the 10 GiB minimum
cluster_name      = "lab"
network_cidr      = "10.231.0.0/24"
gateway           = "10.231.0.1"
first_host_offset = 11
worker_count      = 2
gpu_workers       = []
ssh_user          = "root"
vm_id_base        = 9100
template_vm_id    = 9000
worker_size       = { cores = 2, memory_mb = 4096, disk_gb = 5 }
