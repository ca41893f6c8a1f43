# Scenario functions, sourced by /init. Each prints exactly one "PASS n: …" or "FAIL n: …".
# Config (from /scenario/config): GUID, PORT, HOST (the host as seen through qemu user
# networking: 10.0.2.2, which qemu forwards to the host's 127.0.0.1).
SERVER="nbd://$HOST:$PORT"
BIG="/mnt/$(cat /scenario/big.path)"   # the largest file of the volume

pass() { n=$1; shift; echo "PASS $n: $*"; }
fail() { n=$1; shift; echo "FAIL $n: $*"; }

# check_tree DIR: every file in the host manifest has the same sha256, and DIR holds
# exactly as many regular files as the manifest.
check_tree() {
    (cd "$1" && sha256sum -c /scenario/manifest.sha256 >/tmp/check.out 2>&1) || {
        grep -v ': OK$' /tmp/check.out | head -5; return 1; }
    want=$(wc -l < /scenario/manifest.sha256)
    have=$(cd "$1" && find . -type f ! -path './lost+found/*' | wc -l)
    [ "$want" = "$have" ] || { echo "INFO file count: manifest $want, volume $have"; return 1; }
    echo "INFO verified $want files"
}

# wait_detached nbdN: the kernel tears the device down asynchronously after a disconnect.
wait_detached() {
    i=0
    while [ $i -lt 50 ]; do
        [ "$(cat /sys/block/$1/size)" = 0 ] && [ ! -e /sys/block/$1/pid ] && return 0
        sleep 0.2; i=$((i+1))
    done
    return 1
}

scenario_1() {
    nbd-client -N "$GUID" "$HOST" "$PORT" /dev/nbd0 || { fail 1 "nbd-client connect"; return; }
    mount -t ext4 -o ro /dev/nbd0 /mnt || { fail 1 "mount /dev/nbd0"; nbd-client -d /dev/nbd0; return; }
    if check_tree /mnt; then ok=1; else ok=0; fi
    umount /mnt
    nbd-client -d /dev/nbd0 >/dev/null 2>&1
    wait_detached nbd0 || echo "INFO nbd0 still attached after nbd-client -d"
    [ $ok = 1 ] && pass 1 "nbd-client -N $GUID: ro mount, every file's sha256 matches the host manifest" \
        || fail 1 "checksums differ"
}

scenario_2() {
    dev=$(cimnbd attach "$GUID" --server "$SERVER" --connections 4 --device /dev/nbd0) \
        || { fail 2 "cimnbd attach"; return; }
    [ "$dev" = /dev/nbd0 ] || { fail 2 "attach printed '$dev', want /dev/nbd0"; return; }
    cimnbd status
    ok=1
    # clear errors: the device is taken; an export the server does not have
    if cimnbd attach "$GUID" --server "$SERVER" --device /dev/nbd0 2>/tmp/busy.err; then
        echo "INFO second attach to /dev/nbd0 succeeded"; ok=0
    fi
    echo "INFO attach to a busy device said: $(cat /tmp/busy.err)"
    grep -q "busy" /tmp/busy.err || { echo "INFO no 'busy' in the error"; ok=0; }
    if cimnbd attach 00000000-0000-0000-0000-000000000000 --server "$SERVER" 2>/tmp/unknown.err; then
        echo "INFO attach of an unknown export succeeded"; ok=0
    fi
    echo "INFO attach of an unknown export said: $(cat /tmp/unknown.err)"
    grep -q "has no export named '00000000-0000-0000-0000-000000000000'" /tmp/unknown.err || { echo "INFO unclear unknown-export error"; ok=0; }
    uuid=$(blkid -o value -s UUID /dev/nbd0)
    backend=$(cat /sys/block/nbd0/backend)
    echo "INFO blkid UUID=$uuid backend=$backend"
    [ "$uuid" = "$GUID" ] || { echo "INFO blkid UUID mismatch"; ok=0; }
    [ "$backend" = "$GUID" ] || { echo "INFO backend mismatch"; ok=0; }
    cimnbd status | grep -q "nbd0 .*connected.*$GUID" || { echo "INFO status does not list nbd0 connected with backend"; ok=0; }
    if mount -t ext4 -o ro /dev/nbd0 /mnt; then
        check_tree /mnt || ok=0
        umount /mnt
    else
        echo "INFO mount failed"; ok=0
    fi
    cimnbd detach "$GUID" || { echo "INFO detach by GUID failed"; ok=0; }
    wait_detached nbd0 || { echo "INFO nbd0 still attached after detach"; ok=0; }
    [ $ok = 1 ] && pass 2 "cimnbd attach (4 connections): blkid UUID=GUID, backend=GUID, checksums match, busy/unknown-export errors, detach by GUID" \
        || fail 2 "see INFO lines above"
}

scenario_3() {
    [ -b /dev/vda ] || { fail 3 "no /dev/vda (qemu -drive driver=nbd missing?)"; return; }
    uuid=$(blkid -o value -s UUID /dev/vda)
    ok=1
    [ "$uuid" = "$GUID" ] || { echo "INFO /dev/vda UUID=$uuid"; ok=0; }
    [ "$(cat /sys/block/vda/ro)" = 1 ] || { echo "INFO /dev/vda is not read-only"; ok=0; }
    if mount -t ext4 -o ro /dev/vda /mnt; then
        check_tree /mnt || ok=0
        umount /mnt
    else
        echo "INFO mount /dev/vda failed"; ok=0
    fi
    [ $ok = 1 ] && pass 3 "qemu nbd driver as read-only virtio disk: /dev/vda UUID=GUID, checksums match" \
        || fail 3 "see INFO lines above"
}

scenario_4() {
    want=$(cat /scenario/big.sha256)
    dev=$(cimnbd attach "$GUID" --server "$SERVER" --connections 2 --timeout 5 --dead-conn-timeout 60) \
        || { fail 4 "cimnbd attach"; return; }
    mount -t ext4 -o ro "$dev" /mnt || { fail 4 "mount $dev"; cimnbd detach "$dev"; return; }
    # The supervisor: waits for the kernel's link-dead event, re-handshakes, NBD_CMD_RECONFIGURE.
    cimnbd reconnect "$dev" --server "$SERVER" --connections 2 --watch >/tmp/watch.log 2>&1 &
    watcher=$!
    sleep 1
    ok=1; reads=0; after=0; asked=0
    while [ $reads -lt 12 ]; do
        echo 3 > /proc/sys/vm/drop_caches
        sha256sum "$BIG" > /tmp/read.out 2>&1 &
        reader=$!
        if [ $asked = 0 ]; then
            sleep 1
            echo "@@HOST:KILL-SERVER@@"
            asked=1
        fi
        wait $reader
        got=$(cut -d' ' -f1 /tmp/read.out)
        reads=$((reads+1))
        if [ "$got" != "$want" ]; then echo "INFO read $reads: wrong bytes ($(cat /tmp/read.out))"; ok=0; break; fi
        echo "INFO read $reads: sha256 ok (uptime $(cut -d' ' -f1 /proc/uptime)s)"
        if grep -q reconnected /tmp/watch.log; then
            after=$((after+1))
            [ $after -ge 2 ] && break
        fi
    done
    cat /tmp/watch.log
    grep -q reconnected /tmp/watch.log || { echo "INFO the supervisor never reconnected"; ok=0; }
    [ $after -ge 2 ] || { echo "INFO fewer than 2 reads after reconnect"; ok=0; }
    kill $watcher 2>/dev/null
    umount /mnt
    cimnbd detach "$dev" || ok=0
    [ $ok = 1 ] && pass 4 "server SIGKILLed and restarted mid-read: $reads reads of the largest file all correct; reconnect via NBD_CMD_RECONFIGURE" \
        || fail 4 "see INFO lines above"
}

scenario_5() {
    ok=1
    # not root: a clear error before any kernel call
    if su nobody -s /bin/sh -c "cimnbd attach $GUID --server $SERVER" 2>/tmp/root.err; then
        echo "INFO attach as uid 65534 succeeded"; ok=0
    fi
    echo "INFO attach as uid 65534 said: $(cat /tmp/root.err)"
    grep -q "needs root" /tmp/root.err || { echo "INFO unclear not-root error"; ok=0; }
    dev=$(cimnbd attach "$GUID" --server "$SERVER") || { fail 5 "cimnbd attach"; return; }
    mount -t ext4 -o ro "$dev" /mnt || { fail 5 "mount $dev"; cimnbd detach "$dev"; return; }
    if cimnbd detach "$dev" 2>/tmp/detach.err; then
        echo "INFO detach while mounted succeeded"; ok=0
    fi
    echo "INFO detach while mounted said: $(cat /tmp/detach.err)"
    grep -q "mounted at /mnt" /tmp/detach.err && grep -q "umount" /tmp/detach.err || { echo "INFO unclear error"; ok=0; }
    [ -e /mnt/hello.txt ] && cat /mnt/hello.txt >/dev/null || { echo "INFO mount broken after refused detach"; ok=0; }
    umount /mnt
    cimnbd detach "$dev" || { echo "INFO detach after umount failed"; ok=0; }
    wait_detached "${dev#/dev/}" || { echo "INFO still attached after detach"; ok=0; }
    [ $ok = 1 ] && pass 5 "detach while mounted refused with a clear error; after umount detach succeeds; non-root attach refused clearly" \
        || fail 5 "see INFO lines above"
}

# Not one of the five required scenarios: the ioctl fallback (forced with the hidden --ioctl
# flag, since this kernel has the netlink family).
scenario_6() {
    dev=$(cimnbd attach "$GUID" --server "$SERVER" --connections 2 --ioctl 2>/tmp/attach.err) \
        || { cat /tmp/attach.err; fail 6 "cimnbd attach --ioctl"; return; }
    ok=1
    [ -n "$(cat /sys/block/${dev#/dev/}/pid 2>/dev/null)" ] || { echo "INFO no NBD_DO_IT task for $dev"; ok=0; }
    if mount -t ext4 -o ro "$dev" /mnt; then
        check_tree /mnt || ok=0
        umount /mnt
    else
        echo "INFO mount $dev failed"; ok=0
    fi
    cimnbd detach "$dev" || ok=0
    wait_detached "${dev#/dev/}" || { echo "INFO still attached after detach"; ok=0; }
    [ $ok = 1 ] && pass 6 "ioctl fallback (NBD_SET_SOCK x2, NBD_DO_IT in a forked child): mount, checksums, detach" \
        || fail 6 "see INFO lines above"
}

# Not one of the five required scenarios: scenario 4 with a one-shot `cimnbd reconnect` run
# by hand once the kernel reported the dead connection (no --watch supervisor).
scenario_7() {
    want=$(cat /scenario/big.sha256)
    dev=$(cimnbd attach "$GUID" --server "$SERVER" --timeout 5 --dead-conn-timeout 60) \
        || { fail 7 "cimnbd attach"; return; }
    mount -t ext4 -o ro "$dev" /mnt || { fail 7 "mount $dev"; cimnbd detach "$dev"; return; }
    ok=1
    before=$(dmesg | grep -c "${dev#/dev/}: Receive control failed")
    echo 3 > /proc/sys/vm/drop_caches
    sha256sum "$BIG" > /tmp/read7.out 2>&1 &
    reader=$!
    sleep 1
    echo "@@HOST:KILL-SERVER@@"
    i=0
    while [ "$(dmesg | grep -c "${dev#/dev/}: Receive control failed")" = "$before" ] && [ $i -lt 100 ]; do sleep 0.2; i=$((i+1)); done
    [ $i -lt 100 ] || { echo "INFO the kernel never saw the connection die"; ok=0; }
    tries=0
    until cimnbd reconnect "$dev" --server "$SERVER" 2>/tmp/reconnect.err; do
        tries=$((tries+1)); [ $tries -lt 30 ] || break; sleep 1
    done
    echo "INFO one-shot reconnect after $tries failed attempt(s); last error: $(cat /tmp/reconnect.err)"
    [ $tries -lt 30 ] || ok=0
    wait $reader
    [ "$(cut -d' ' -f1 /tmp/read7.out)" = "$want" ] || { echo "INFO interrupted read: $(cat /tmp/read7.out)"; ok=0; }
    echo 3 > /proc/sys/vm/drop_caches
    [ "$(sha256sum "$BIG" | cut -d' ' -f1)" = "$want" ] || { echo "INFO read after reconnect differs"; ok=0; }
    umount /mnt
    cimnbd detach "$dev" || ok=0
    [ $ok = 1 ] && pass 7 "one-shot cimnbd reconnect after a server crash: interrupted read and a later read correct" \
        || fail 7 "see INFO lines above"
}

# Scenario 8: the daemon inside the guest; `cimnbd mount --attach` mounts and attaches in one
# step, `cimnbd dismount` detaches first (refused while the device is mounted).
scenario_8() {
    G8=5d1e0c2b-8a4f-4b6e-9c3d-2f1a0b9c8d7e
    C8=/tmp/control8.sock
    cimnbd serve --no-demo --listen 127.0.0.1:10810 --control $C8 --state /tmp/state8.json >/tmp/serve8.log 2>&1 &
    spid=$!
    i=0; while [ ! -S $C8 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
    [ -S $C8 ] || { cat /tmp/serve8.log; fail 8 "cimnbd serve did not start"; return; }
    ok=1
    out=$(cimnbd mount /scenario/small small.cim --volume-id $G8 --attach --connections 2 --control $C8 2>/tmp/m8.err) \
        || { cat /tmp/m8.err; fail 8 "cimnbd mount --attach"; kill $spid; return; }
    dev=$(echo "$out" | tail -1)
    [ "$(echo "$out" | head -1)" = "$G8" ] || { echo "INFO mount printed: $out"; ok=0; }
    [ -b "$dev" ] || { echo "INFO no block device '$dev'"; fail 8 "mount --attach printed no device"; kill $spid; return; }
    name=${dev#/dev/}
    [ "$(cat /sys/block/$name/backend)" = "$G8" ] || { echo "INFO backend: $(cat /sys/block/$name/backend)"; ok=0; }
    cimnbd list --control $C8 | grep "$G8" | grep -q "$dev" || { echo "INFO list does not show $dev"; ok=0; }
    mount -t ext4 -o ro "$dev" /mnt || { fail 8 "mount $dev"; kill $spid; return; }
    (cd /mnt && sha256sum -c /scenario/small.sha256 >/tmp/c8.out 2>&1) || { head -3 /tmp/c8.out; ok=0; }
    cimnbd dismount $G8 --control $C8 2>/tmp/d8.err; rc=$?
    [ $rc = 16 ] && grep -q "mounted" /tmp/d8.err || { echo "INFO dismount while mounted: rc $rc: $(cat /tmp/d8.err)"; ok=0; }
    umount /mnt
    cimnbd dismount $G8 --control $C8 || { echo "INFO dismount after umount failed"; ok=0; }
    wait_detached "$name" || { echo "INFO $dev still attached"; ok=0; }
    cimnbd list --control $C8 | grep -q "$G8" && { echo "INFO still listed"; ok=0; }
    kill $spid; wait $spid 2>/dev/null
    [ $ok = 1 ] && pass 8 "daemon in the guest: mount --attach gives $dev (backend=GUID, listed), checksums match; dismount refused while mounted, then detaches and dismounts" \
        || fail 8 "see INFO lines above"
}

# Scenario 9: the daemon inside the guest is SIGKILLed while a device it attached is mounted,
# and started again: it restores the mount from its state file and gives the kernel new
# sockets by itself (NBD_CMD_RECONFIGURE); a read issued while it was down completes with
# the right bytes. No `cimnbd reconnect` is run.
scenario_9() {
    G9=7a2b3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d
    C9=/tmp/control9.sock; S9=/tmp/state9.json
    start9() {
        cimnbd serve --no-demo --listen 127.0.0.1:10811 --control $C9 --state $S9 >>/tmp/serve9.log 2>&1 &
        spid=$!
        i=0; while [ ! -S $C9 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
        [ -S $C9 ]
    }
    start9 || { cat /tmp/serve9.log; fail 9 "cimnbd serve did not start"; return; }
    out=$(cimnbd mount /scenario/small small.cim --volume-id $G9 --attach --dead-conn-timeout 60 --control $C9 2>/tmp/m9.err) \
        || { cat /tmp/m9.err; fail 9 "cimnbd mount --attach"; kill $spid; return; }
    dev=$(echo "$out" | tail -1)
    mount -t ext4 -o ro "$dev" /mnt || { fail 9 "mount $dev"; kill $spid; return; }
    ok=1
    kill -9 $spid; wait $spid 2>/dev/null; rm -f $C9
    echo 3 > /proc/sys/vm/drop_caches
    # Read every file while the daemon is down: the kernel holds the I/O.
    (cd /mnt && sha256sum -c /scenario/small.sha256 >/tmp/c9.out 2>&1; echo $? > /tmp/c9.rc) &
    rpid=$!
    sleep 3
    [ -e /tmp/c9.rc ] && { echo "INFO the read finished while the daemon was down: $(cat /tmp/c9.rc)"; ok=0; }
    start9 || { cat /tmp/serve9.log; fail 9 "cimnbd serve did not restart"; return; }
    i=0; while kill -0 $rpid 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
    [ "$(cat /tmp/c9.rc 2>/dev/null)" = 0 ] || { head -3 /tmp/c9.out; tail -5 /tmp/serve9.log; ok=0; }
    grep -q "reconnected $dev" /tmp/serve9.log || { echo "INFO the daemon did not log a reconnect"; ok=0; }
    umount /mnt
    cimnbd dismount $G9 --control $C9 || { echo "INFO dismount failed"; ok=0; }
    kill $spid; wait $spid 2>/dev/null
    [ $ok = 1 ] && pass 9 "daemon SIGKILLed with $dev mounted; the restarted daemon reconnected the device itself; the read issued meanwhile completed with correct bytes" \
        || fail 9 "see INFO lines above"
}

# Scenario 10: the daemon requires TLS on TCP (--tls require, PSK) and also serves a Unix
# socket: `cimnbd mount --attach` attaches the kernel through that socket (the kernel's nbd
# driver cannot carry TLS; --tls require leaves Unix sockets plain).
scenario_10() {
    G10=8b3c4d5e-6f70-4b2c-9d3e-4f5a6b7c8d9e
    C10=/tmp/control10.sock; N10=/tmp/nbd10.sock
    printf 'alice:5c1e0a7d3b9f2e8c4a6d1b0f7e3c9a2d5b8e1f4a7c0d3e6b9f2a5c8e1b4d7a0f\n' > /tmp/keys10.psk
    cimnbd serve --no-demo --listen 127.0.0.1:10812 --socket $N10 --tls require --tls-psk /tmp/keys10.psk \
        --control $C10 --state /tmp/state10.json >/tmp/serve10.log 2>&1 &
    spid=$!
    i=0; while [ ! -S $C10 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
    [ -S $C10 ] || { cat /tmp/serve10.log; fail 10 "cimnbd serve did not start"; return; }
    ok=1
    out=$(cimnbd mount /scenario/small small.cim --volume-id $G10 --attach --control $C10 2>/tmp/m10.err) \
        || { cat /tmp/m10.err; fail 10 "cimnbd mount --attach under --tls require"; kill $spid; return; }
    dev=$(echo "$out" | tail -1)
    echo "$out" | grep -q "^nbds://127.0.0.1:10812/$G10\$" || { echo "INFO mount printed: $out"; ok=0; }
    [ -b "$dev" ] || { echo "INFO no block device '$dev'"; fail 10 "mount --attach printed no device"; kill $spid; return; }
    mount -t ext4 -o ro "$dev" /mnt || { fail 10 "mount $dev"; kill $spid; return; }
    (cd /mnt && sha256sum -c /scenario/small.sha256 >/tmp/c10.out 2>&1) || { head -3 /tmp/c10.out; ok=0; }
    umount /mnt
    cimnbd dismount $G10 --control $C10 || { echo "INFO dismount failed"; ok=0; }
    wait_detached "${dev#/dev/}" || { echo "INFO $dev still attached"; ok=0; }
    grep -q "TLS required on TCP only" /tmp/serve10.log || { echo "INFO no TLS scope line in the log"; ok=0; }
    kill $spid; wait $spid 2>/dev/null
    [ $ok = 1 ] && pass 10 "--tls require with --socket: mount --attach attached $dev through the Unix socket; checksums match; dismount detaches" \
        || fail 10 "see INFO lines above"
}
