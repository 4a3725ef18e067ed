#!/usr/bin/env bash
# Prepare this host for medic's test suite. Idempotent; a second run is fast.
#
#   - installs the Debian/Ubuntu packages the tests use (skipped when present)
#   - starts the Docker engine (systemctl when systemd is PID 1, else dockerd
#     in the background, log in /var/log/medic-test-dockerd.log)
#   - builds the local test image medic-test:busybox from busybox-static
#     (no registry is needed; rebuilt only when its recipe changes)
#   - starts PostgreSQL and creates role medic / password medic / database medic
#
# Works as root (CI) or as a sudoer. Needs no standard input.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

readonly IMAGE="medic-test:busybox"
readonly DOCKERD_LOG="/var/log/medic-test-dockerd.log"
readonly DOCKER_DEADLINE=60
readonly PG_DEADLINE=60
readonly PG_ROLE="medic" PG_PASSWORD="medic" PG_DB="medic"

# Packages the tests need; chromium is handled apart (Ubuntu only ships a snap).
readonly PACKAGES=(
    docker.io busybox-static postgresql python3-venv python3-dev gcc
    supervisor debootstrap systemd curl procps ca-certificates faketime docker-compose monit
    etcd-server etcd-client prometheus prometheus-alertmanager
)
# prometheus is there for promtool (docs/prometheus/medic-rules.yaml is checked and
# unit-tested with it), prometheus-alertmanager for a real Alertmanager sending its
# webhook to medic; the servers their packages start are stopped again (quiet_units).

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
warn() { printf '\033[33mWARNING: %s\033[0m\n' "$*" >&2; }
die() {
    printf '\n\033[31m!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n' >&2
    printf 'ERROR: %s\n' "$*" >&2
    printf '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\033[0m\n\n' >&2
    exit 1
}

# Run a command as root: directly when we are root, else through sudo
# (non-interactive when there is no terminal to ask for a password on).
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif [ -t 0 ]; then
        sudo env DEBIAN_FRONTEND=noninteractive "$@"
    else
        sudo -n env DEBIAN_FRONTEND=noninteractive "$@"
    fi
}

# Run a command as the postgres OS user, from a directory it can read.
as_postgres() {
    (cd / && as_root runuser -u postgres -- "$@")
}

is_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null)" = "ii " ]
}

apt_install() {
    as_root apt-get -o DPkg::Lock::Timeout=300 install -y -q "$@"
}

install_packages() {
    command -v dpkg-query >/dev/null 2>&1 || die "this script needs a Debian or Ubuntu host (no dpkg-query found)"
    local missing=() pkg
    for pkg in "${PACKAGES[@]}"; do
        is_installed "$pkg" || missing+=("$pkg")
    done
    local want_chromium=0
    if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
        want_chromium=1
    fi
    if [ "${#missing[@]}" -eq 0 ] && [ "$want_chromium" -eq 0 ]; then
        log "packages: all present, skipping apt"
        return
    fi
    log "packages: installing ${missing[*]:-}$([ "$want_chromium" -eq 1 ] && echo ' chromium')"
    as_root apt-get -o DPkg::Lock::Timeout=300 update -q \
        || as_root apt-get -o DPkg::Lock::Timeout=300 update -q \
        || die "apt-get update failed"
    if [ "${#missing[@]}" -gt 0 ]; then
        apt_install "${missing[@]}" || die "apt-get install ${missing[*]} failed"
        case " ${missing[*]} " in *" prometheus "*) quiet_units prometheus prometheus-node-exporter ;; esac
        case " ${missing[*]} " in *" prometheus-alertmanager "*) quiet_units prometheus-alertmanager ;; esac
    fi
    local tool
    for tool in promtool prometheus prometheus-alertmanager; do
        command -v "$tool" >/dev/null 2>&1 || die "the packages left no $tool on PATH"
    done
    if [ "$want_chromium" -eq 1 ]; then
        # Debian has a real chromium package; Ubuntu's is a snap wrapper that
        # cannot work without snapd, so there it is a warning, not an error.
        if apt-cache show chromium >/dev/null 2>&1 && apt_install chromium; then
            :
        else
            warn "could not install chromium from apt (Ubuntu ships it only as a snap);" \
                "tests that screenshot the status page need a chromium binary"
        fi
    fi
}

# The prometheus package starts a server on :9090 (and its recommended node
# exporter on :9100), prometheus-alertmanager one on :9093, where an init system
# lets them; the tests run their own. Called only right after this script
# installed the package, so a server the host ran before is left alone.
quiet_units() {
    local unit
    for unit in "$@"; do
        if systemd_is_pid1; then
            as_root systemctl disable --now "$unit.service" >/dev/null 2>&1 || true
        elif [ -x "/etc/init.d/$unit" ]; then
            as_root "/etc/init.d/$unit" stop >/dev/null 2>&1 || true
        fi
    done
}

# --------------------------------------------------------------------------
# Docker engine
# --------------------------------------------------------------------------
docker_ok() { as_root docker info >/dev/null 2>&1; }

systemd_is_pid1() { [ -d /run/systemd/system ] && [ "$(cat /proc/1/comm 2>/dev/null)" = "systemd" ]; }

docker_log_tail() {
    if systemd_is_pid1; then
        as_root journalctl -u docker.service -n 40 --no-pager 2>&1 || true
    else
        as_root tail -n 40 "$DOCKERD_LOG" 2>&1 || true
    fi
}

start_docker() {
    if docker_ok; then
        log "docker: engine already running"
        return
    fi
    local t0=$SECONDS
    if systemd_is_pid1; then
        log "docker: systemctl start docker"
        as_root systemctl start docker.service || true
    elif pgrep -x dockerd >/dev/null 2>&1; then
        log "docker: dockerd is running but not answering yet, waiting"
    else
        log "docker: starting dockerd in the background (log: $DOCKERD_LOG)"
        # setsid + every standard stream redirected: the engine outlives this
        # script and holds none of its caller's pipes open.
        as_root bash -c "setsid nohup dockerd >>'$DOCKERD_LOG' 2>&1 </dev/null &"
    fi
    local deadline=$((SECONDS + DOCKER_DEADLINE))
    until docker_ok; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            docker_log_tail >&2
            die "the Docker engine did not answer 'docker info' within ${DOCKER_DEADLINE}s (log above). The Docker tests cannot run without it."
        fi
        sleep 0.5
    done
    log "docker: engine up after $((SECONDS - t0))s"
}

# --------------------------------------------------------------------------
# Test image: a rootfs holding only Debian's static busybox
# --------------------------------------------------------------------------
IMAGE_CMD='["/bin/httpd", "-f", "-p", "8080", "-h", "/www"]'

# The recipe: everything that shapes the image. Its source text (declare -f),
# the busybox binary and IMAGE_CMD are hashed into the image label.
build_rootfs() {
    local root="$1" busybox="$2" applet
    chmod 0755 "$root"
    mkdir -p "$root/bin" "$root/etc" "$root/www" "$root/root" "$root/proc" \
        "$root/sys" "$root/dev" "$root/var/run" "$root/usr"
    install -d -m 1777 "$root/tmp"
    install -m 0755 "$busybox" "$root/bin/busybox"
    for applet in $("$busybox" --list); do
        [ "$applet" = "busybox" ] || ln -sf busybox "$root/bin/$applet"
    done
    # Absolute paths such as /usr/bin/env or /sbin/ip resolve too.
    ln -s ../bin "$root/usr/bin"
    ln -s ../bin "$root/usr/sbin"
    ln -s bin "$root/sbin"
    printf '<!doctype html><title>medic test</title><h1>medic test container</h1>\n' \
        >"$root/www/index.html"
    printf 'ok\n' >"$root/www/healthz"
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
        >"$root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
    chmod 0644 "$root/etc/passwd" "$root/etc/group" "$root/www/index.html" "$root/www/healthz"
}

recipe_hash() {
    local busybox="$1"
    {
        declare -f build_rootfs
        printf '%s\n' "$IMAGE_CMD"
        sha256sum <"$busybox"
    } | sha256sum | cut -c1-16
}

build_image() {
    local busybox
    busybox="$(command -v busybox || true)"
    [ -n "$busybox" ] || die "busybox is not installed (package busybox-static)"
    if ! busybox_is_static "$busybox"; then
        die "$busybox is dynamically linked; install the package busybox-static"
    fi
    local hash current
    hash="$(recipe_hash "$busybox")"
    current="$(as_root docker image inspect -f '{{ index .Config.Labels "medic.recipe" }}' "$IMAGE" 2>/dev/null || true)"
    if [ "$current" = "$hash" ]; then
        log "image: $IMAGE is up to date (recipe $hash)"
        return
    fi
    log "image: building $IMAGE (recipe $hash${current:+, was $current})"
    local t0=$SECONDS root
    root="$(mktemp -d /tmp/medic-test-rootfs.XXXXXX)"
    # shellcheck disable=SC2064  # expand $root now
    trap "rm -rf '$root'" EXIT
    build_rootfs "$root" "$busybox"
    tar -C "$root" --numeric-owner --owner=0 --group=0 -c . \
        | as_root docker import \
            --change "CMD $IMAGE_CMD" \
            --change 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'EXPOSE 8080' \
            --change 'WORKDIR /' \
            --change "LABEL medic.recipe=$hash" \
            --message "medic test image (busybox-static), recipe $hash" \
            - "$IMAGE" >/dev/null \
        || die "docker import of $IMAGE failed"
    rm -rf "$root"
    trap - EXIT
    # Remove the untagged image this one replaced (only dangling ones we made).
    local old
    for old in $(as_root docker images -q --filter dangling=true --filter label=medic.recipe); do
        as_root docker rmi "$old" >/dev/null 2>&1 || true
    done
    log "image: built in $((SECONDS - t0))s"
}

busybox_is_static() {
    # ldd says "not a dynamic executable" (static) or "statically linked"
    # (static-pie); a dynamic binary lists its libraries instead.
    local out
    out="$(ldd "$1" 2>&1 || true)"
    grep -qE 'not a dynamic executable|statically linked' <<<"$out"
}

# --------------------------------------------------------------------------
# medic-test:systemd, for tests/systemd (its own script; rebuilt only when
# its recipe changes)
# --------------------------------------------------------------------------
build_systemd_image() {
    as_root bash "$(dirname "${BASH_SOURCE[0]}")/build-systemd-image.sh" >/dev/null \
        || die "building the systemd test image failed (scripts/build-systemd-image.sh, output above)"
}

# --------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------
pg_port=5432

start_postgres() {
    local clusters
    clusters="$(pg_lsclusters -h 2>/dev/null || true)"
    if [ -z "$clusters" ]; then
        local version
        version="$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -n | tail -1)"
        [ -n "$version" ] || die "PostgreSQL server is not installed (no /usr/lib/postgresql/VERSION)"
        log "postgres: no cluster, creating $version/main"
        as_root pg_createcluster "$version" main >/dev/null
        clusters="$(pg_lsclusters -h)"
    fi
    local ver name port status
    while read -r ver name port status _; do
        if [[ "$status" != online* ]]; then
            log "postgres: starting cluster $ver/$name (port $port)"
            as_root pg_ctlcluster "$ver" "$name" start </dev/null \
                || die "pg_ctlcluster $ver $name start failed; see /var/log/postgresql/postgresql-$ver-$name.log"
        fi
    done <<<"$clusters"
    # The tests use the cluster on 5432 when there is one, else the first.
    pg_port="$(awk '$3 == 5432 {print $3; exit}' <<<"$clusters")"
    [ -n "$pg_port" ] || pg_port="$(awk 'NR == 1 {print $3}' <<<"$clusters")"

    local deadline=$((SECONDS + PG_DEADLINE))
    until pg_isready -q -h 127.0.0.1 -p "$pg_port"; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            as_root tail -n 30 /var/log/postgresql/*.log >&2 || true
            die "PostgreSQL on 127.0.0.1:$pg_port is not ready after ${PG_DEADLINE}s"
        fi
        sleep 0.5
    done
    log "postgres: ready on 127.0.0.1:$pg_port"
}

provision_postgres() {
    as_postgres psql -p "$pg_port" -X -q -v ON_ERROR_STOP=1 -f - >/dev/null <<SQL || die "could not create the PostgreSQL role/database $PG_ROLE"
DO \$\$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_ROLE') THEN
        CREATE ROLE $PG_ROLE LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
    ELSE
        ALTER ROLE $PG_ROLE LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
    END IF;
END
\$\$;
SELECT 'CREATE DATABASE $PG_DB OWNER $PG_ROLE'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$PG_DB') \gexec
SQL
    if pg_password_login; then
        log "postgres: $PG_ROLE@127.0.0.1:$pg_port/$PG_DB logs in with its password"
        return
    fi
    # pg_hba.conf has no password rule for 127.0.0.1 (Debian's default has
    # one): put one first and reload.
    local hba
    hba="$(as_postgres psql -p "$pg_port" -X -tAc 'SHOW hba_file')"
    warn "password login over 127.0.0.1 failed; adding a rule to $hba"
    as_root sed -i "1i host $PG_DB $PG_ROLE 127.0.0.1/32 scram-sha-256 # added by medic setup-test-env.sh" "$hba"
    as_postgres psql -p "$pg_port" -X -q -c 'SELECT pg_reload_conf()' >/dev/null
    sleep 1
    pg_password_login || die "$PG_ROLE cannot log in to 127.0.0.1:$pg_port/$PG_DB with its password (check $hba)"
}

pg_password_login() {
    PGPASSWORD="$PG_PASSWORD" PGCONNECT_TIMEOUT=5 psql -X -q -h 127.0.0.1 -p "$pg_port" \
        -U "$PG_ROLE" -d "$PG_DB" -tAc 'SELECT 1' 2>/dev/null | grep -qx 1
}

# --------------------------------------------------------------------------
main() {
    local t0=$SECONDS
    install_packages
    start_docker
    build_image
    build_systemd_image
    start_postgres
    provision_postgres

    local docker_version image_id pg_state
    docker_version="$(as_root docker version -f '{{.Server.Version}}' 2>/dev/null || echo '?')"
    image_id="$(as_root docker image inspect -f '{{.Id}}' "$IMAGE" | cut -c1-19)"
    pg_state="$(pg_lsclusters -h | awk '{printf "%s/%s:%s %s; ", $1, $2, $3, $4}')"
    echo
    echo "medic test environment ready in $((SECONDS - t0))s"
    echo "  docker engine : $docker_version"
    echo "  test image    : $IMAGE $image_id"
    echo "  systemd image : medic-test:systemd $(as_root docker image inspect -f '{{.Id}}' medic-test:systemd | cut -c1-19)"
    echo "  postgresql    : ${pg_state%; }"
    echo "  test dsn      : postgresql://$PG_ROLE:$PG_PASSWORD@127.0.0.1:$pg_port/$PG_DB"
}

main "$@"
