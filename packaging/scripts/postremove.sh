#!/bin/sh
# Purge (deb) or erase (rpm): no file is left behind. Bytecode caches pip or Python wrote
# under /opt/bulwark are not in the package's file list, so they are removed here.
set -e
case "$1" in
    remove|0) rm -rf /opt/bulwark ;;
    purge) rm -rf /opt/bulwark /etc/bulwark /var/lib/bulwark ;;
esac
if [ "$1" = purge ] || [ "$1" = 0 ]; then
    rm -rf /etc/bulwark /var/lib/bulwark
fi
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
exit 0
