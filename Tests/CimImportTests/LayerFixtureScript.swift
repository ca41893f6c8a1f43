/// Python (tarfile, gzip, zipfile; zstd through the `zstd` tool) that writes
/// the test inputs into the directory given as its argument: three layer
/// tars (gzip, zstd, plain) with go-winio's PAX records, an OCI image layout
/// of them, broken layers, and an MSIX package.
enum LayerFixtureScript {
    static let source = #"""
import base64, gzip, hashlib, io, json, os, subprocess, sys, tarfile, zipfile

out = sys.argv[1]
SD_A = bytes([1, 0, 4, 0x80, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]) + bytes([1, 1, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0])
SD_B = bytes([1, 0, 4, 0x80, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]) + bytes([1, 1, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0])

def pattern(seed, n):
    state = seed
    data = bytearray()
    while len(data) < n:
        state = (state * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        data += state.to_bytes(8, 'little')
    return bytes(data[:n])

BIG = pattern(11, 300 * 1024)
README = pattern(12, 5000)
README3 = b"readme of layer 3\n"
NEW = pattern(13, 6000)
open(os.path.join(out, 'big.bin'), 'wb').write(BIG)
open(os.path.join(out, 'readme.bin'), 'wb').write(README)
open(os.path.join(out, 'new.bin'), 'wb').write(NEW)

def entry(tar, name, kind=tarfile.REGTYPE, data=b'', link='', pax=None, sd=SD_A, attr=None, mtime='1700000000.1234567'):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mtime = 1700000000
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    headers = {'mtime': mtime, 'atime': '1700000100.5', 'ctime': '1700000200.25'}
    if sd is not None:
        headers['MSWINDOWS.rawsd'] = base64.b64encode(sd).decode()
    if attr is not None:
        headers['MSWINDOWS.fileattr'] = str(attr)
    headers.update(pax or {})
    info.pax_headers = headers
    info.linkname = link
    if kind == tarfile.REGTYPE:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    else:
        tar.addfile(info)

def build(entries):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode='w', format=tarfile.PAX_FORMAT) as tar:
        entries(tar)
    return buffer.getvalue()

def base(tar):
    D = tarfile.DIRTYPE
    for d in ['Files', 'Files/Windows', 'Files/Windows/System32', 'Files/Windows/System32/config', 'Files/olddir', 'Files/olddir/sub', 'UtilityVM', 'UtilityVM/Files']:
        entry(tar, d, D, attr=16)
    for hive in ['SYSTEM', 'Software', 'SAM', 'SECURITY', 'DEFAULT']:
        entry(tar, 'Files/Windows/System32/config/' + hive, data=('hive ' + hive).encode(), attr=32)
    entry(tar, 'Files/readme.txt', data=README, attr=0x21, pax={'LIBARCHIVE.creationtime': '1600000000.5'})
    entry(tar, 'Files/nosd.txt', data=b'no descriptor', sd=None, attr=0x20, mtime='1700000000')
    entry(tar, 'Files/ea.txt', data=b'ea', attr=0x20, pax={'MSWINDOWS.xattr.USER.EA1': base64.b64encode(b'hello').decode(), 'MSWINDOWS.xattr.B': base64.b64encode(bytes([1, 2, 3])).decode()})
    entry(tar, 'Files/ads.txt', data=b'main stream', attr=0x20)
    entry(tar, 'Files/ads.txt:Zone.Identifier', data=b'[ZoneTransfer]\r\nZoneId=3\r\n', attr=0x20)
    entry(tar, 'Files/ads.txt:second:$DATA', data=b'second stream', attr=0x20)
    entry(tar, 'Files/hidden.sys', data=b'hs', attr=0x2 | 0x4 | 0x400)
    entry(tar, 'Files/link_rel', tarfile.SYMTYPE, link='readme.txt', attr=0x400 | 0x20)
    entry(tar, 'Files/link_abs', tarfile.SYMTYPE, link='C:\\Windows\\System32', attr=0x400 | 0x10)
    entry(tar, 'Files/junction', tarfile.SYMTYPE, link='C:\\Windows', attr=0x400 | 0x10, pax={'MSWINDOWS.mountpoint': '1'})
    entry(tar, 'Files/hard.txt', tarfile.LNKTYPE, link='Files/readme.txt')
    entry(tar, 'Files/big.bin', data=BIG, attr=0x20, sd=SD_B)
    entry(tar, 'Files/sparse.bin', data=bytes(2 << 20) + b'end', attr=0x20 | 0x200)
    entry(tar, 'Files/olddir/a.txt', data=b'a', attr=0x20)
    entry(tar, 'Files/olddir/sub/b.txt', data=b'b', attr=0x20)
    entry(tar, 'Files/gone.txt', data=b'gone soon', attr=0x20)
    entry(tar, 'UtilityVM/Files/uvm.txt', data=b'utility vm', attr=0x20)

def layer2(tar):
    entry(tar, 'Files', tarfile.DIRTYPE, attr=16)
    entry(tar, 'Files/.wh.gone.txt', data=b'', sd=None)
    entry(tar, 'Files/.wh.olddir', data=b'', sd=None)
    entry(tar, 'Files/new.txt', data=NEW, attr=0x20)
    entry(tar, 'Files/crosslink.bin', tarfile.LNKTYPE, link='Files/big.bin')
    entry(tar, 'Hives', tarfile.DIRTYPE, attr=16)
    entry(tar, 'Hives/SOFTWARE_DELTA', data=b'delta hive', attr=0x20)

def layer3(tar):
    entry(tar, 'Files', tarfile.DIRTYPE, attr=16)
    entry(tar, 'Files/olddir', tarfile.DIRTYPE, attr=16)
    entry(tar, 'Files/olddir/c.txt', data=b'c again', attr=0x20)
    entry(tar, 'Files/readme.txt', data=README3, attr=0x20)

tars = [build(base), build(layer2), build(layer3)]
blobs = [gzip.compress(tars[0], mtime=0),
         subprocess.run(['zstd', '-q', '-c'], input=tars[1], stdout=subprocess.PIPE, check=True).stdout,
         tars[2]]
open(os.path.join(out, 'base.tar.gz'), 'wb').write(blobs[0])
open(os.path.join(out, 'layer2.tar.zst'), 'wb').write(blobs[1])
open(os.path.join(out, 'layer3.tar'), 'wb').write(blobs[2])
types = ['application/vnd.oci.image.layer.v1.tar+gzip', 'application/vnd.oci.image.layer.v1.tar+zstd', 'application/vnd.oci.image.layer.v1.tar']

def sha(data):
    return 'sha256:' + hashlib.sha256(data).hexdigest()

def layout(path, blobs, tars, corrupt=False, docker=False):
    os.makedirs(os.path.join(path, 'blobs', 'sha256'), exist_ok=True)
    def put(data):
        open(os.path.join(path, 'blobs', 'sha256', hashlib.sha256(data).hexdigest()), 'wb').write(data)
        return {'digest': sha(data), 'size': len(data)}
    config = json.dumps({'architecture': 'amd64', 'os': 'windows', 'os.version': '10.0.20348.1',
                         'rootfs': {'type': 'layers', 'diff_ids': [sha(t) for t in tars]}}).encode()
    layers = []
    for index, (blob, media) in enumerate(zip(blobs, types)):
        descriptor = put(blob)
        descriptor['mediaType'] = media
        if docker:
            # Docker's types: the base as a foreign layer (its blob present), the others plain gzip ones.
            descriptor['mediaType'] = 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip' if index == 0 else 'application/vnd.docker.image.rootfs.diff.tar.gzip'
            if index == 0:
                descriptor['urls'] = ['https://mcr.microsoft.com/v2/windows/nanoserver/blobs/' + descriptor['digest']]
        layers.append(descriptor)
    configDescriptor = put(config)
    configDescriptor['mediaType'] = 'application/vnd.oci.image.config.v1+json'
    manifest = json.dumps({'schemaVersion': 2, 'mediaType': 'application/vnd.oci.image.manifest.v1+json',
                           'config': configDescriptor, 'layers': layers}).encode()
    manifestDescriptor = put(manifest)
    manifestDescriptor['mediaType'] = 'application/vnd.oci.image.manifest.v1+json'
    if docker:
        # A manifest list with a Linux entry first: the windows one must be chosen.
        linux = put(b'{"schemaVersion": 2, "layers": []}')
        linux['mediaType'] = 'application/vnd.docker.distribution.manifest.v2+json'
        linux['platform'] = {'os': 'linux', 'architecture': 'amd64'}
        manifestDescriptor['mediaType'] = 'application/vnd.docker.distribution.manifest.v2+json'
        manifestDescriptor['platform'] = {'os': 'windows', 'architecture': 'amd64'}
        listing = json.dumps({'schemaVersion': 2, 'mediaType': 'application/vnd.docker.distribution.manifest.list.v2+json',
                              'manifests': [linux, manifestDescriptor]}).encode()
        manifestDescriptor = put(listing)
        manifestDescriptor['mediaType'] = 'application/vnd.docker.distribution.manifest.list.v2+json'
    manifestDescriptor['annotations'] = {'org.opencontainers.image.ref.name': 'ltsc2022'}
    open(os.path.join(path, 'index.json'), 'w').write(json.dumps({'schemaVersion': 2, 'manifests': [manifestDescriptor]}))
    open(os.path.join(path, 'oci-layout'), 'w').write('{"imageLayoutVersion": "1.0.0"}')
    if corrupt:
        # The plain layer's bytes change after the manifest named them: still a valid tar.
        name = os.path.join(path, 'blobs', 'sha256', layers[2]['digest'][7:])
        data = open(name, 'rb').read()
        assert b'c again' in data
        open(name, 'wb').write(data.replace(b'c again', b'C again'))

layout(os.path.join(out, 'oci'), blobs, tars)
layout(os.path.join(out, 'oci-corrupt'), blobs, tars, corrupt=True)
layout(os.path.join(out, 'docker'), blobs, tars, docker=True)

# Broken layers.
open(os.path.join(out, 'truncated.tar.gz'), 'wb').write(blobs[0][:len(blobs[0]) // 2])
def single(name, kind=tarfile.REGTYPE, link='', data=b'x'):
    return build(lambda tar: (entry(tar, 'Files', tarfile.DIRTYPE, attr=16), entry(tar, name, kind, data=data, link=link)))
open(os.path.join(out, 'dotdot.tar'), 'wb').write(single('Files/../../evil.txt'))
open(os.path.join(out, 'absolute.tar'), 'wb').write(single('/Files/abs.txt'))
open(os.path.join(out, 'missinglink.tar'), 'wb').write(single('Files/link.txt', tarfile.LNKTYPE, link='Files/nothere.txt'))
open(os.path.join(out, 'case.tar'), 'wb').write(build(lambda tar: (entry(tar, 'Files', tarfile.DIRTYPE, attr=16),
    entry(tar, 'Files/Report.txt', data=b'1'), entry(tar, 'Files/report.TXT', data=b'2'))))
open(os.path.join(out, 'opaque.tar'), 'wb').write(single('Files/.wh..wh..opq'))

# Descriptors as SDDL only (MSWINDOWS.sd), one with rawsd as well (rawsd wins), and a bad one.
SDDL = 'O:BAG:SYD:PAI(A;OICI;FA;;;SY)(A;;0x1200a9;;;BU)'
open(os.path.join(out, 'sddl.tar'), 'wb').write(build(lambda tar: (entry(tar, 'Files', tarfile.DIRTYPE, attr=16, sd=None, pax={'MSWINDOWS.sd': 'D:NO_ACCESS_CONTROL'}),
    entry(tar, 'Files/sddl.txt', data=b's', sd=None, attr=0x20, pax={'MSWINDOWS.sd': SDDL}),
    entry(tar, 'Files/both.txt', data=b'b', attr=0x20, pax={'MSWINDOWS.sd': SDDL}))))
open(os.path.join(out, 'badsddl.tar'), 'wb').write(build(lambda tar: (entry(tar, 'Files', tarfile.DIRTYPE, attr=16),
    entry(tar, 'Files/bad.txt', data=b'x', sd=None, pax={'MSWINDOWS.sd': 'O:BAD:(A;;FA;;;DU)'}))))

# An MSIX package (a zip): footprint files, a percent-encoded name, stored and deflated members.
manifest = ('<?xml version="1.0" encoding="utf-8"?>\n'
            '<Package xmlns="http://schemas.microsoft.com/appx/manifest/foundation/windows10">\n'
            '  <!-- <Identity Name="commented" /> -->\n'
            '  <Identity Name="putty" Publisher="CN=testcert" Version="1.0.1.0" ProcessorArchitecture="x64" />\n'
            '  <Properties><DisplayName>PuTTY</DisplayName></Properties>\n'
            '</Package>\n').encode()
with zipfile.ZipFile(os.path.join(out, 'package.msix'), 'w') as z:
    z.writestr('putty.exe', pattern(21, 200000), compress_type=zipfile.ZIP_DEFLATED)
    z.writestr('My%20Docs/read%20me.txt', b'spaces in the name', compress_type=zipfile.ZIP_DEFLATED)
    z.writestr('Assets/logo.png', pattern(22, 3000), compress_type=zipfile.ZIP_STORED)
    z.writestr('AppxManifest.xml', manifest, compress_type=zipfile.ZIP_DEFLATED)
    z.writestr('AppxBlockMap.xml', b'<BlockMap/>', compress_type=zipfile.ZIP_DEFLATED)
    z.writestr('AppxMetadata/CodeIntegrity.cat', pattern(23, 500), compress_type=zipfile.ZIP_DEFLATED)
    z.writestr('[Content_Types].xml', b'<Types/>', compress_type=zipfile.ZIP_DEFLATED)
    z.writestr('AppxSignature.p7x', pattern(24, 700), compress_type=zipfile.ZIP_STORED)
open(os.path.join(out, 'putty.exe'), 'wb').write(pattern(21, 200000))
data = open(os.path.join(out, 'package.msix'), 'rb').read()
open(os.path.join(out, 'truncated.msix'), 'wb').write(data[:len(data) - 300])
"""#
}
