# The spotgrid worker image: a current Ubuntu LTS with the spotgrid package installed and
# spotgrid-agent.service enabled but not started (an instance starts it once its user data
# has written /etc/spotgrid/agent.env), plus the researcher's own software from an optional
# provisioning script. See packer/README.md.
#
#   packer build -var region=eu-west-1 -var deb=../build/spotgrid_0.1.0_amd64.deb \
#     -var provision_script=./install-my-software.sh spotgrid-agent.pkr.hcl

variable "region" {
  type        = string
  description = "The region the AMI is built in (and registered in)."
}

variable "instance_type" {
  type        = string
  default     = "t3.medium"
  description = "The instance type that builds the image (not the workers' types)."
}

variable "deb" {
  type        = string
  description = "The spotgrid .deb (cpack -G DEB), built on the base image's release."
}

variable "provision_script" {
  type        = string
  default     = ""
  description = "A script run as root after the package is installed, for the researcher's own software (empty: provision.sh, which does nothing)."
}

variable "base_ami_name" {
  type        = string
  default     = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"
  description = "Name pattern of the base image; the most recent match is used."
}

variable "base_ami_owner" {
  type        = string
  default     = "099720109477"
  description = "Account that publishes the base image (099720109477: Canonical)."
}

variable "ssh_username" {
  type        = string
  default     = "ubuntu"
  description = "The base image's login user."
}

variable "ami_name_prefix" {
  type        = string
  default     = "spotgrid-agent"
  description = "The AMI is named <prefix>-<timestamp>."
}

variable "volume_size_gb" {
  type        = number
  default     = 16
  description = "Root volume of the image (and of workers unless the launch template says otherwise)."
}

locals {
  timestamp        = regex_replace(timestamp(), "[- TZ:]", "")
  provision_script = var.provision_script != "" ? var.provision_script : "${path.root}/provision.sh"
}

source "amazon-ebs" "spotgrid_agent" {
  region          = var.region
  instance_type   = var.instance_type
  ssh_username    = var.ssh_username
  ami_name        = "${var.ami_name_prefix}-${local.timestamp}"
  ami_description = "spotgrid worker: spotgrid-agent.service enabled, started by user data"

  source_ami_filter {
    filters = {
      name                = var.base_ami_name
      root-device-type    = "ebs"
      virtualization-type = "hvm"
      architecture        = "x86_64"
    }
    owners      = [var.base_ami_owner]
    most_recent = true
  }

  # Workers get IMDSv2 only from their launch template (deploy/fleet.yaml). Packer 1.6's
  # amazon-ebs has no metadata_options; with the amazon plugin >= 1.0 add
  # `metadata_options { http_tokens = "required" }` and `imds_support = "v2.0"` here.

  launch_block_device_mappings {
    device_name           = "/dev/sda1"
    volume_size           = var.volume_size_gb
    volume_type           = "gp3"
    iops                  = 3000
    throughput            = 125
    delete_on_termination = true
  }

  tags = {
    Name        = "${var.ami_name_prefix}-${local.timestamp}"
    application = "spotgrid"
    base_ami    = "{{ .SourceAMI }}"
  }
}

build {
  sources = ["source.amazon-ebs.spotgrid_agent"]

  provisioner "file" {
    source      = var.deb
    destination = "/tmp/spotgrid.deb"
  }

  provisioner "file" {
    source      = local.provision_script
    destination = "/tmp/spotgrid-provision.sh"
  }

  # cloud-init may still be installing packages when SSH comes up; apt would then fail on
  # its lock.
  provisioner "shell" {
    inline = [
      "cloud-init status --wait >/dev/null || true",
      "sudo DEBIAN_FRONTEND=noninteractive apt-get update -q",
      "sudo DEBIAN_FRONTEND=noninteractive apt-get install -q -y /tmp/spotgrid.deb",
      "sudo systemctl enable spotgrid-agent.service",
      "rm -f /tmp/spotgrid.deb",
    ]
  }

  # The researcher's software: what INSTALL.sh did in older tools. Runs as root with the
  # package installed, so it may also add a drop-in to relax the agent's sandbox.
  provisioner "shell" {
    inline = [
      "sudo chmod 0755 /tmp/spotgrid-provision.sh",
      "sudo DEBIAN_FRONTEND=noninteractive /tmp/spotgrid-provision.sh",
      "rm -f /tmp/spotgrid-provision.sh",
    ]
  }

  # The image must not carry this build's identity: instances get their own machine id and
  # host keys, and the agent never ran here.
  provisioner "shell" {
    inline = [
      "test \"$(systemctl is-enabled spotgrid-agent.service)\" = enabled",
      "! systemctl is-active --quiet spotgrid-agent.service",
      "sudo apt-get clean",
      "sudo truncate -s 0 /etc/machine-id",
    ]
  }
}
