# Exactly the output contract of docs/architecture-freeze.md §2 (tests/fixtures/offline-env
# produces the same names and shapes). em-infra reads them from terraform.tfstate to build the
# Ansible inventory. Values come from the topology module, so they are the static addresses
# cloud-init configured, never agent-reported ones; depends_on publishes the node outputs only
# together with the VMs.

output "cluster_name" {
  description = "The cluster name (Ansible group var em_cluster_name, kubeconfig context)."
  value       = module.topology.cluster_name
}

output "ssh_user" {
  description = "User Ansible connects as."
  value       = module.topology.ssh_user
}

output "control_plane_ips" {
  description = "Control plane IPs without prefix, slot order."
  value       = module.topology.control_plane_ips
  depends_on  = [module.vm_ubuntu22]
}

output "worker_ips" {
  description = "Plain worker IPs without prefix, slot order."
  value       = module.topology.worker_ips
  depends_on  = [module.vm_ubuntu22]
}

output "gpu_worker_ips" {
  description = "GPU worker IPs without prefix, slot order."
  value       = module.topology.gpu_worker_ips
  depends_on  = [module.gpu_worker]
}

output "nodes" {
  description = "Every node keyed by name: { name, role, ip, vm_id, proxmox_node, gpu }, gpu = { mapping, pci_id } (one of them null) or null."
  value       = module.topology.inventory_nodes
  depends_on  = [module.vm_ubuntu22, module.gpu_worker]
}
