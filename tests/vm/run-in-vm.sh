#!/usr/bin/env bash
# Run a command inside a throw-away QEMU (TCG) VM whose kernel mounts a pure
# cgroup v2 hierarchy at /sys/fs/cgroup (or, with --cgroup v1, a legacy
# cgroup v1 layout).  See tests/vm/README.md.
#
#   tests/vm/run-in-vm.sh [--mem MB] [--timeout SECS] [--cgroup v1|v2]
#                         [--add SRC:DEST]... [--module NAME]... -- COMMAND [ARGS...]
#
# Exit status: the guest command's status; 124 on host-side timeout;
# 125 if the VM died without reporting a status; 2 on usage errors.
set -euo pipefail

prog=${0##*/}
script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd -- "$script_dir/../.." && pwd)
CACHE=${MINIBOX_VM_CACHE:-$repo_root/target/vm}
KERNEL_META=linux-image-cloud-amd64   # Debian's small "cloud" kernel flavour

MEM=1024
TIMEOUT=600
CGROUP=v2
SMP=${MINIBOX_VM_SMP:-2}
ADDS=()
MODULES=()

die()  { printf '%s: error: %s\n' "$prog" "$*" >&2; exit 2; }
note() { [[ -n ${MINIBOX_VM_VERBOSE:-} ]] && printf '%s: %s\n' "$prog" "$*" >&2; return 0; }

usage() {
    cat <<EOF
usage: $prog [--mem MB] [--timeout SECS] [--cgroup v1|v2] [--add SRC:DEST]... [--module NAME]... -- COMMAND [ARGS...]

  --mem MB         guest RAM (default $MEM)
  --timeout SECS   host-side timeout for the whole VM run (default $TIMEOUT)
  --cgroup v2      /sys/fs/cgroup is a pure cgroup v2 hierarchy (the default)
  --cgroup v1      /sys/fs/cgroup is a tmpfs with cgroup v1 hierarchies memory,
                   cpu,cpuacct (co-mounted; cpu and cpuacct are symlinks to it)
                   pids and devices, as on Debian 10 or RHEL 7; no cgroup2 mount
  --add SRC:DEST   copy host file/dir SRC to absolute path DEST in the guest
                   (directories recursively, modes and symlinks preserved)
  --module NAME    load kernel module NAME (plus its deps) before COMMAND,
                   e.g. overlay, veth, bridge, loop (not built into the kernel)

COMMAND runs as root (pid 1's child) in /, stdin </dev/null, output on the
console.  Set guest env vars with: -- env K=V COMMAND ...
Environment: MINIBOX_VM_CACHE (kernel cache dir, default <repo>/target/vm),
MINIBOX_VM_KERNEL (use this vmlinuz instead of the cached Debian one),
MINIBOX_VM_SMP (vCPUs, default 2), MINIBOX_VM_VERBOSE=1 (show boot log).
EOF
}

# ---------------------------------------------------------------- arguments
while (($#)); do
    case $1 in
        --mem)       (($# >= 2)) || die "--mem needs a value"; MEM=$2; shift 2 ;;
        --mem=*)     MEM=${1#*=}; shift ;;
        --timeout)   (($# >= 2)) || die "--timeout needs a value"; TIMEOUT=$2; shift 2 ;;
        --timeout=*) TIMEOUT=${1#*=}; shift ;;
        --cgroup)    (($# >= 2)) || die "--cgroup needs v1 or v2"; CGROUP=$2; shift 2 ;;
        --cgroup=*)  CGROUP=${1#*=}; shift ;;
        --add)       (($# >= 2)) || die "--add needs SRC:DEST"; ADDS+=("$2"); shift 2 ;;
        --add=*)     ADDS+=("${1#*=}"); shift ;;
        --module)    (($# >= 2)) || die "--module needs a name"; MODULES+=("$2"); shift 2 ;;
        --module=*)  MODULES+=("${1#*=}"); shift ;;
        -h|--help)   usage; exit 0 ;;
        --)          shift; break ;;
        *)           usage >&2; die "unexpected argument '$1' (missing '--'?)" ;;
    esac
done
(($#)) || { usage >&2; die "no COMMAND given"; }
[[ $MEM =~ ^[0-9]+$ ]] || die "--mem must be an integer (MB)"
[[ $TIMEOUT =~ ^[0-9]+$ ]] || die "--timeout must be an integer (seconds)"
[[ $CGROUP == v1 || $CGROUP == v2 ]] || die "--cgroup must be v1 or v2, not '$CGROUP'"
for spec in "${ADDS[@]}"; do
    [[ $spec == *:* ]] || die "--add '$spec': expected SRC:DEST"
    src=${spec%:*} dest=${spec##*:}
    [[ -e $src ]] || die "--add '$spec': '$src' does not exist"
    [[ $dest == /* ]] || die "--add '$spec': DEST must be an absolute path"
done

# ------------------------------------------------------------ prerequisites
SUDO=() CAN_ROOT=1
if ((EUID != 0)); then
    if command -v sudo >/dev/null; then SUDO=(sudo); else CAN_ROOT=; fi
fi

apt_updated=
apt_retry() {   # run an apt-get command, waiting for locks held by other shells
    local i sudo=("${SUDO[@]}")
    [[ $1 == download ]] && sudo=()       # needs no privileges
    for ((i = 0; i < 60; i++)); do
        if "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get \
               -o DPkg::Lock::Timeout=600 -o Acquire::Retries=3 "$@"; then
            return 0
        fi
        printf '%s: apt-get %s failed (lock held?), retrying in 5 s\n' "$prog" "$1" >&2
        sleep 5
    done
    return 1
}
apt_update_once() {
    [[ -n $apt_updated || -z $CAN_ROOT ]] && return 0   # non-root: use lists as they are
    apt_retry -qq update >&2
    apt_updated=1
}

ensure_prereqs() {
    local missing=()
    command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
    [[ -x /bin/busybox ]] && dpkg-query -W -f='${Status}' busybox-static 2>/dev/null |
        grep -q 'install ok installed' || missing+=(busybox-static)
    command -v cpio >/dev/null || missing+=(cpio)
    ((${#missing[@]})) || return 0
    [[ -n $CAN_ROOT ]] || die "missing host packages: ${missing[*]} (install them as root, or run as root)"
    printf '%s: installing %s\n' "$prog" "${missing[*]}" >&2
    apt_update_once
    apt_retry -qq -y --no-install-recommends install "${missing[@]}" >&2
}

# Fetch Debian's cloud kernel once into $CACHE (vmlinuz, config,
# kernel-release, lib/modules/<release>/).
ensure_kernel() {
    if [[ -n ${MINIBOX_VM_KERNEL:-} ]]; then
        [[ -r $MINIBOX_VM_KERNEL ]] || die "MINIBOX_VM_KERNEL=$MINIBOX_VM_KERNEL not readable"
        KERNEL=$MINIBOX_VM_KERNEL
        return
    fi
    KERNEL=$CACHE/vmlinuz
    [[ -s $KERNEL ]] && return
    mkdir -p "$CACHE"
    local lockfd stage pkg
    exec {lockfd}>"$CACHE/.kernel.lock"
    flock "$lockfd"
    if [[ ! -s $KERNEL ]]; then          # re-check: another run may have won
        apt_update_once
        pkg=$(apt-cache depends "$KERNEL_META" 2>/dev/null |
              awk '$1 == "Depends:" && $2 ~ /^linux-image-/ {print $2; exit}')
        [[ -n $pkg ]] || die "cannot resolve $KERNEL_META via apt-cache depends"
        printf '%s: fetching kernel %s into %s\n' "$prog" "$pkg" "$CACHE" >&2
        stage=$(mktemp -d "$CACHE/.fetch.XXXXXX")
        chmod 755 "$stage"   # so apt's _apt sandbox user may write into it
        (cd "$stage" && apt_retry -qq download "$pkg" 2>&1 |
            grep -v 'unsandboxed as root' >&2 || true)
        local deb=("$stage"/*.deb)
        [[ -f ${deb[0]} ]] || { rm -rf "$stage"; die "apt-get download $pkg failed"; }
        dpkg-deb -x "${deb[0]}" "$stage/x"
        local vmlinuz=("$stage"/x/boot/vmlinuz-*)
        [[ -f ${vmlinuz[0]} ]] || die "no boot/vmlinuz-* in ${deb[0]}"
        local rel=${vmlinuz[0]##*/vmlinuz-}
        rm -rf "$CACHE/lib" "$CACHE/config" "$CACHE/kernel-release"
        mkdir -p "$CACHE/lib/modules"
        mv "$stage/x/lib/modules/$rel" "$CACHE/lib/modules/$rel"
        mv "$stage/x/boot/config-$rel" "$CACHE/config"
        printf '%s\n' "$rel" >"$CACHE/kernel-release"
        mv "${vmlinuz[0]}" "$CACHE/vmlinuz.tmp"
        mv "$CACHE/vmlinuz.tmp" "$KERNEL"       # atomic: publish last
        rm -rf "$stage"
    fi
    flock -u "$lockfd"
    exec {lockfd}>&-
}

# The .deb ships no modules.dep (its postinst runs depmod): make one, once.
ensure_modules_dep() {
    [[ -z ${MINIBOX_VM_KERNEL:-} ]] || die "--module only works with the cached Debian kernel"
    local rel lockfd
    rel=$(<"$CACHE/kernel-release")
    MODDIR=$CACHE/lib/modules/$rel
    [[ -d $MODDIR ]] || die "no modules in $MODDIR (remove $CACHE to refetch the kernel)"
    [[ -f $MODDIR/modules.dep ]] && return
    if ! PATH=$PATH:/sbin:/usr/sbin command -v depmod >/dev/null; then
        [[ -n $CAN_ROOT ]] || die "--module needs depmod (package kmod) on the host"
        apt_update_once
        apt_retry -qq -y --no-install-recommends install kmod >&2
    fi
    exec {lockfd}>"$CACHE/.kernel.lock"
    flock "$lockfd"
    if [[ ! -f $MODDIR/modules.dep ]]; then
        PATH=$PATH:/sbin:/usr/sbin depmod -b "$CACHE" "$rel"
    fi
    flock -u "$lockfd"
    exec {lockfd}>&-
}

ensure_prereqs
ensure_kernel
((${#MODULES[@]} == 0)) || ensure_modules_dep

# --------------------------------------------------------------- initramfs
WORK=$(mktemp -d "${TMPDIR:-/tmp}/minibox-vm.XXXXXX")
cleanup() {
    local pids
    pids=$(jobs -pr)          # our own still-running background jobs (timeout+qemu, filter)
    if [[ -n $pids ]]; then
        kill $pids 2>/dev/null || true
        wait 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ROOT=$WORK/root
mkdir -p "$ROOT"/{.vm/bin,.vm/modules,proc,sys,dev,tmp,run,root,etc,newroot}
chmod 1777 "$ROOT/tmp"
# busybox and its applet symlinks (made at boot by stage 1) live in /.vm/bin,
# so --add'ed files under /bin etc. never collide with a busybox symlink.
cp /bin/busybox "$ROOT/.vm/bin/busybox"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$ROOT/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$ROOT/etc/group"

for spec in "${ADDS[@]}"; do
    src=${spec%:*} dest=${spec##*:}
    dest=${dest%/}
    if [[ -d $src ]]; then
        mkdir -p "$ROOT$dest"
        cp -a -- "$src/." "$ROOT$dest/"
    else
        mkdir -p "$(dirname -- "$ROOT$dest")"
        cp -L --preserve=mode,timestamps -- "$src" "$ROOT$dest"
    fi
done

# Kernel modules (+ dependencies, in load order) for --module.
if ((${#MODULES[@]})); then
    moddir=$MODDIR
    declare -A mod_seen=()
    mod_order=()
    add_module() {   # $1: path relative to $moddir, e.g. kernel/fs/overlayfs/overlay.ko
        local rel=$1 line dep
        [[ -n ${mod_seen[$rel]:-} ]] && return
        mod_seen[$rel]=1
        line=$(grep -m1 "^${rel}:" "$moddir/modules.dep") || die "module $rel not in modules.dep"
        for dep in ${line#*:}; do add_module "$dep"; done
        mod_order+=("$rel")
    }
    for m in "${MODULES[@]}"; do
        m=${m//-/_}
        rel=$(awk -F: -v m="$m" '{ n = $1; sub(/.*\//, "", n); sub(/\.ko(\.[a-z]+)?$/, "", n);
                                   gsub(/-/, "_", n); if (n == m) { print $1; exit } }' "$moddir/modules.dep")
        if [[ -z $rel ]]; then
            grep -qE "/${m}\.ko" "$moddir/modules.builtin" 2>/dev/null &&
                { note "module $m is built in"; continue; }
            die "kernel module '$m' not found"
        fi
        add_module "$rel"
    done
    : >"$ROOT/.vm/modules/order"
    for rel in "${mod_order[@]}"; do
        cp "$moddir/$rel" "$ROOT/.vm/modules/"
        printf '%s\n' "${rel##*/}" >>"$ROOT/.vm/modules/order"
    done
fi

# The command, shell-quoted, so arbitrary bytes in args survive.
shq() { local s=${1//\'/\'\\\'\'}; printf "'%s'" "$s"; }
{
    printf '# generated by %s\n' "$prog"
    sep=
    for a in "$@"; do printf '%s%s' "$sep" "$(shq "$a")"; sep=' '; done
    printf '\n'
} >"$ROOT/.vm/cmd"
printf '%s\n' "$CGROUP" >"$ROOT/.vm/cgroup"

# Stage 1: / is the initramfs (rootfs), where pivot_root(2) gives EINVAL.
# Copy everything onto a real tmpfs and switch_root into it.
cat >"$ROOT/init" <<'EOF'
#!/.vm/bin/busybox sh
export PATH=/.vm/bin
/.vm/bin/busybox mount -t proc proc /proc
/.vm/bin/busybox --install -s /.vm/bin
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o mode=0755 tmpfs /newroot
for f in /* /.[!.]* /..?*; do
    [ -e "$f" ] || [ -L "$f" ] || continue
    case $f in /proc|/sys|/dev|/newroot) continue ;; esac
    cp -a "$f" /newroot/ || echo "stage1: copying $f failed" >&2
done
mkdir -p /newroot/proc /newroot/sys /newroot/dev
umount /proc /sys /dev
exec switch_root /newroot /stage2
echo "stage1: switch_root failed" >&2
exec sh
EOF

# Stage 2: pid 1 on the tmpfs root.  Mounts the cgroup layout /.vm/cgroup
# names; leaves cgroup.subtree_control (v2) and the v1 groups alone.
cat >"$ROOT/stage2" <<'EOF'
#!/.vm/bin/busybox sh
export PATH=/.vm/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=0755 tmpfs /run
if [ "$(cat /.vm/cgroup)" = v1 ]; then
    # The legacy layout of Debian 10 or RHEL 7: a tmpfs holding one v1
    # hierarchy per controller (devices too), cpu and cpuacct co-mounted; no
    # cgroup2.
    mount -t tmpfs -o mode=0755 cgroup /sys/fs/cgroup
    for c in memory cpu,cpuacct pids devices; do
        mkdir -p "/sys/fs/cgroup/$c"
        mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c" ||
            echo "stage2: mounting the cgroup v1 $c hierarchy failed" >&2
    done
    ln -s cpu,cpuacct /sys/fs/cgroup/cpu
    ln -s cpu,cpuacct /sys/fs/cgroup/cpuacct
else
    mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
fi
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up
hostname minibox-vm
if [ -f /.vm/modules/order ]; then
    while read -r m; do
        insmod "/.vm/modules/$m" || echo "stage2: insmod $m failed" >&2
    done </.vm/modules/order
fi
export PATH=/.vm/bin:/bin:/sbin:/usr/bin:/usr/sbin:/usr/local/bin
export HOME=/root TERM=dumb
cd /
echo MINIBOX-VM-START
sh /.vm/cmd </dev/null
status=$?
echo "MINIBOX-VM-EXIT=$status"
sync
poweroff -f
sleep 5
EOF
chmod 755 "$ROOT/init" "$ROOT/stage2"

INITRD=$WORK/initrd.cpio.gz
(cd "$ROOT" && find . -mindepth 1 -print0 |
    LC_ALL=C sort -z |
    cpio --null --create --format=newc --owner=0:0 --quiet) | gzip -1 >"$INITRD"

# --------------------------------------------------------------------- run
APPEND="console=ttyS0 panic=-1 quiet loglevel=3 rdinit=/init"
APPEND+=" 8250.nr_uarts=1 random.trust_cpu=on mitigations=off tsc=reliable no_timer_check"
QEMU=(qemu-system-x86_64 -accel tcg -cpu max -smp "$SMP" -m "$MEM"
      -nographic -nodefaults -no-user-config -serial stdio -nic none
      -no-reboot -kernel "$KERNEL" -initrd "$INITRD" -append "$APPEND")
note "${QEMU[*]}"

LOG=$WORK/boot.log        # everything before MINIBOX-VM-START (boot noise)
STATUS_FILE=$WORK/status
# Streams the console: boot noise -> $LOG, command output -> stdout (CRs
# stripped), until the exit marker; the status goes to $STATUS_FILE.
filter() {
    local line phase=boot
    while IFS= read -r line || [[ -n $line ]]; do
        line=${line//$'\r'/}
        case $phase in
            boot)
                if [[ $line == *MINIBOX-VM-START ]]; then
                    phase=run
                else
                    printf '%s\n' "$line" >>"$LOG"
                    [[ -n ${MINIBOX_VM_VERBOSE:-} ]] && printf '%s\n' "$line" >&2
                fi ;;
            run)
                if [[ $line =~ ^(.*)MINIBOX-VM-EXIT=([0-9]+)$ ]]; then
                    printf '%s' "${BASH_REMATCH[1]}"
                    printf '%s\n' "${BASH_REMATCH[2]}" >"$STATUS_FILE"
                    phase=done
                else
                    printf '%s\n' "$line"
                fi ;;
            done)
                printf '%s\n' "$line" >>"$LOG" ;;
        esac
    done
    [[ $phase != boot ]] || : >"$WORK/no-start"
}

# qemu runs as a background job (not in a pipeline) so that the INT/TERM
# traps can kill it: timeout(1) puts itself in its own process group, out of
# reach of a terminal's ^C.
mkfifo "$WORK/console"
filter <"$WORK/console" &
filter_pid=$!
timeout -k 5 "$TIMEOUT" "${QEMU[@]}" </dev/null >"$WORK/console" 2>"$WORK/qemu.err" &
vm_pid=$!
qemu_rc=0
wait "$vm_pid" || qemu_rc=$?
wait "$filter_pid" || true

if [[ -s $STATUS_FILE ]]; then
    exit "$(<"$STATUS_FILE")"
fi
if ((qemu_rc == 124 || qemu_rc == 137)); then
    printf '%s: error: VM timed out after %s s without reporting an exit status\n' "$prog" "$TIMEOUT" >&2
    code=124
else
    printf '%s: error: VM exited (qemu status %s) without reporting an exit status\n' "$prog" "$qemu_rc" >&2
    code=125
fi
if [[ -s $WORK/qemu.err ]]; then
    printf -- '--- qemu stderr ---\n' >&2; tail -n 20 "$WORK/qemu.err" >&2
fi
if [[ -e $WORK/no-start && -s $LOG ]]; then
    printf -- '--- guest console (last 40 lines) ---\n' >&2; tail -n 40 "$LOG" >&2
fi
exit "$code"
