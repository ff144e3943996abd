#!/bin/sh
# On removal (not upgrade) nothing will be left to manage the protections, so they go:
# stop the agent, then detach every agent's XDP program, table and pins.
set -e
case "$1" in
    remove|purge|0) ;;
    *) exit 0 ;;  # deb upgrade / failed-upgrade, rpm $1=1: the new version takes over
esac
if [ -d /run/systemd/system ]; then
    systemctl disable --now bulwark-agent.service bulwark-hub.service >/dev/null 2>&1 || true
fi
unset PYTHONPATH PYTHONHOME  # only what the package holds
[ -f /etc/bulwark/agent.toml ] && export BULWARK_AGENT_CONFIG=/etc/bulwark/agent.toml
/opt/bulwark/bin/bulwark agent uninstall || echo "bulwark: uninstall failed; run 'bulwark agent detach' by hand" >&2
exit 0
