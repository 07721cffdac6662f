# expect: gpu_workers
# mistake: 11 GPU workers (slots 40-49 hold 10)
cluster_name      = "lab"
network_cidr      = "10.231.0.0/24"
gateway           = "10.231.0.1"
first_host_offset = 11
worker_count      = 2
gpu_workers = [
  { mapping = "gpu0" },
  { mapping = "gpu1" },
  { mapping = "gpu2" },
  { mapping = "gpu3" },
  { mapping = "gpu4" },
  { mapping = "gpu5" },
  { mapping = "gpu6" },
  { mapping = "gpu7" },
  { mapping = "gpu8" },
  { mapping = "gpu9" },
  { mapping = "gpu10" },
]
ssh_user       = "root"
vm_id_base     = 9100
template_vm_id = 9000
