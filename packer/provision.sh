#!/bin/bash
# Example provisioning hook for the spotgrid worker image (packer -var provision_script=...).
#
# Packer runs the script as root on the build instance after the spotgrid package is
# installed: install here what your grid's commands need, the way INSTALL.sh did in older
# tools. Units run as the `spotgrid` user with HOME=/var/lib/spotgrid/home, inside the
# agent's sandbox (read-only /usr, /etc and /opt; no /home): install software system-wide,
# e.g. under /opt or with apt. This example installs nothing.
set -euo pipefail

# Packages from the distribution:
#apt-get install -y --no-install-recommends python3-numpy python3-scipy

# A tool of your own, built or unpacked under /opt:
#install -d /opt/mytool
#curl -fsSL https://example.org/mytool.tar.gz | tar -xz -C /opt/mytool

# Commands that need more than the sandbox allows (GPUs, extra writable paths):
#install -d /etc/systemd/system/spotgrid-agent.service.d
#cat >/etc/systemd/system/spotgrid-agent.service.d/relax.conf <<'CONF'
#[Service]
#PrivateDevices=no
#CONF

echo "spotgrid: provision.sh example ran; nothing to install"
