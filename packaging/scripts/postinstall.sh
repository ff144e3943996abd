#!/bin/sh
# Enables nothing: the agent starts once enrolled (`bulwark agent enroll`, then
# `systemctl enable --now bulwark-agent`). On an upgrade a running agent is restarted:
# the protections stay pinned while it is down, and the new agent replaces the XDP
# program atomically (one netlink link update), so no packet passes unfiltered.
set -e
getent passwd bulwark-hub >/dev/null 2>&1 || \
    useradd --system --home-dir /var/lib/bulwark-hub --no-create-home --shell /usr/sbin/nologin bulwark-hub || true
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
    # deb: configure <old-version>; rpm: $1 >= 2 on upgrade
    if [ -n "$2" ] || [ "${1:-0}" -ge 2 ] 2>/dev/null; then
        systemctl try-restart bulwark-agent.service || true
    fi
fi
exit 0
