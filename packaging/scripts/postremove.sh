#!/bin/sh
# Purge (deb) or erase (rpm): no file is left behind. Bytecode caches pip or Python wrote
# under /opt/bulwark are not in the package's file list, so they are removed here.
set -e
case "$1" in
    remove|purge|0) rm -rf /opt/bulwark ;;
esac
if [ "$1" = purge ] || [ "$1" = 0 ]; then
    rm -rf /etc/bulwark /var/lib/bulwark
    # the hub's user goes too, unless a hub's data (owned by it) is kept
    if [ ! -e /var/lib/bulwark-hub ] && getent passwd bulwark-hub >/dev/null 2>&1; then
        userdel bulwark-hub >/dev/null 2>&1 || true
    fi
fi
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
exit 0
