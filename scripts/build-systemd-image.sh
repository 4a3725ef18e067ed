#!/usr/bin/env bash
# Build medic-test:systemd, a Debian bookworm image that boots systemd as PID 1,
# for the tests in tests/systemd/. Idempotent: the image carries a hash of its
# recipe in a label and is rebuilt only when the recipe changes (about 60 s).
#
#   sudo bash scripts/build-systemd-image.sh          # prints the image name
#   MEDIC_DEBIAN_MIRROR=http://... bash scripts/...   # another Debian mirror
#
# docker import takes no STOPSIGNAL: run it with --stop-signal SIGRTMIN+3.
# medic itself is not in the image: the tests install it at run time from a
# wheelhouse built on the host, so a code change never needs a rebuild.
set -euo pipefail

readonly IMAGE="medic-test:systemd"
readonly SUITE="bookworm"
readonly MIRROR="${MEDIC_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# systemd-analyze (security) ships in the systemd package itself.
readonly PACKAGES="systemd,systemd-sysv,dbus,python3,python3-venv,procps,curl,ca-certificates"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf '\033[31mERROR: %s\033[0m\n' "$*" >&2; exit 1; }

# The entrypoint: on this cgroup-v1 host Docker mounts the container's own
# cgroup hierarchies read-only; systemd needs them writable to create unit
# cgroups and apply MemoryMax=/TasksMax=. Only mounts inside this container's
# namespace are touched, never the host's /sys/fs/cgroup.
write_entrypoint() {
    cat >"$1" <<'EOF'
#!/bin/sh
set -e
mount -o remount,rw /sys/fs/cgroup 2>/dev/null || true
awk '$5 ~ "^/sys/fs/cgroup/" {print $5}' /proc/self/mountinfo | while read -r dir; do
    mount -o remount,bind,rw "$dir"
done
exec /lib/systemd/systemd "$@"
EOF
    chmod 0755 "$1"
}

# Units a container has no use for: no consoles, no hardware, no time sync.
configure_rootfs() {
    local root="$1" unit
    for unit in getty.target console-getty.service systemd-udevd.service \
        systemd-udev-trigger.service systemd-timesyncd.service \
        systemd-firstboot.service systemd-modules-load.service \
        sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount \
        systemd-remount-fs.service apt-daily.timer apt-daily-upgrade.timer \
        e2scrub_all.timer fstrim.timer; do
        ln -sf /dev/null "$root/etc/systemd/system/$unit"
    done
    # An empty machine-id: systemd makes a fresh one at each boot.
    : >"$root/etc/machine-id"
    printf 'medic-systemd-test\n' >"$root/etc/hostname"
    mkdir -p "$root/etc/systemd/journald.conf.d"
    printf '[Journal]\nStorage=volatile\nRateLimitBurst=0\n' \
        >"$root/etc/systemd/journald.conf.d/medic-test.conf"
    write_entrypoint "$root/usr/local/sbin/medic-test-init"
}

trim_rootfs() {
    local root="$1"
    rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
        "$root"/usr/share/locale/* "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
        "$root"/var/cache/apt/archives/*.deb "$root"/var/log/*.log
}

recipe_hash() {
    {
        printf '%s %s %s\n' "$SUITE" "$PACKAGES" "$IMAGE"
        declare -f write_entrypoint configure_rootfs trim_rootfs import_rootfs
    } | sha256sum | cut -c1-16
}

import_rootfs() {
    local root="$1" hash="$2"
    tar -C "$root" --numeric-owner -c . \
        | docker import \
            --change 'ENTRYPOINT ["/usr/local/sbin/medic-test-init"]' \
            --change 'ENV container=docker' \
            --change "LABEL medic.recipe=$hash" \
            --message "medic systemd test image ($SUITE), recipe $hash" \
            - "$IMAGE" >/dev/null
}

main() {
    # Test runs started together build once: the second waits, then finds it built.
    exec 9>/tmp/medic-systemd-image.lock
    flock 9
    local hash current
    hash="$(recipe_hash)"
    current="$(docker image inspect -f '{{ index .Config.Labels "medic.recipe" }}' "$IMAGE" 2>/dev/null || true)"
    if [ "$current" = "$hash" ]; then
        log "image: $IMAGE is up to date (recipe $hash)"
        echo "$IMAGE"
        return
    fi
    [ "$(id -u)" -eq 0 ] || die "debootstrap needs root"
    command -v debootstrap >/dev/null || die "debootstrap is not installed (scripts/setup-test-env.sh installs it)"
    log "image: building $IMAGE (recipe $hash${current:+, was $current}) from $MIRROR"
    local t0=$SECONDS root
    root="$(mktemp -d /var/tmp/medic-systemd-rootfs.XXXXXX)"
    # shellcheck disable=SC2064  # expand $root now
    trap "rm -rf '$root'" EXIT
    debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root" "$MIRROR" \
        >"$root.log" 2>&1 || { tail -n 30 "$root.log" >&2; die "debootstrap failed (log above)"; }
    rm -f "$root.log"
    configure_rootfs "$root"
    trim_rootfs "$root"
    import_rootfs "$root" "$hash" || die "docker import of $IMAGE failed"
    rm -rf "$root"
    trap - EXIT
    local old
    for old in $(docker images -q --filter dangling=true --filter label=medic.recipe); do
        docker rmi "$old" >/dev/null 2>&1 || true
    done
    log "image: built $IMAGE in $((SECONDS - t0))s ($(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%d MB", $1/1e6}'))"
    echo "$IMAGE"
}

main "$@"
