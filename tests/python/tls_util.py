"""A test CA and certificates bound to node keys (common/cm_tls_id.h): the
URI subject alternative name muri:node:<public key>:<signature>, the node
key's ed25519 signature over BLAKE2b-256(0x14 || the certificate's
SubjectPublicKeyInfo, DER). Made with the openssl command."""
import hashlib
import os
import subprocess

from sodium_keys import keypair_from_seed, sign

DOM_TLS_ID = 0x14


def _run(*args):
    return subprocess.run(["openssl", *args], check=True, capture_output=True).stdout


def node_uri(seed, tls_key):
    """The URI binding the TLS key file tls_key to the node key of seed."""
    pk, sk = keypair_from_seed(seed)
    spki = _run("pkey", "-in", tls_key, "-pubout", "-outform", "DER")
    d = hashlib.blake2b(bytes([DOM_TLS_ID]) + spki, digest_size=32).digest()
    return f"muri:node:{pk.hex()}:{sign(sk, d).hex()}"


class TestCA:
    """A CA in folder d; issue() makes a certificate for 127.0.0.1 and
    localhost, bound to a node key when given its seed."""
    __test__ = False

    def __init__(self, d):
        self.dir = str(d)
        os.makedirs(self.dir, exist_ok=True)
        self.key = os.path.join(self.dir, "ca.key")
        self.ca = os.path.join(self.dir, "ca.pem")
        _run("req", "-x509", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-days", "2", "-subj", "/CN=muri test CA", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-keyout", self.key, "-out", self.ca)
        os.chmod(self.key, 0o600)

    def issue(self, name, seed=None, uri=None):
        """(certificate, key) files; the certificate carries uri, or the
        binding to seed's node key."""
        crt, key = os.path.join(self.dir, f"{name}.crt"), os.path.join(self.dir, f"{name}.key")
        csr, ext = os.path.join(self.dir, f"{name}.csr"), os.path.join(self.dir, f"{name}.ext")
        _run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", key)
        os.chmod(key, 0o600)
        san = "DNS:localhost,IP:127.0.0.1"
        if uri is None and seed is not None:
            uri = node_uri(seed, key)
        if uri:
            san += ",URI:" + uri
        with open(ext, "w") as f:
            f.write(f"subjectAltName={san}\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n")
        _run("req", "-new", "-key", key, "-subj", f"/CN={name}", "-out", csr)
        _run("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.key, "-CAcreateserial",
             "-days", "2", "-extfile", ext, "-out", crt)
        return crt, key

    def args(self, name, seed):
        """A service's TLS flags with a certificate bound to seed's node key."""
        crt, key = self.issue(name, seed)
        return ("--tls-cert", crt, "--tls-key", key, "--tls-ca", self.ca)

    def credentials(self, cert=None):
        """grpc channel credentials verifying against this CA; with cert =
        (certificate, key) files, presenting that certificate."""
        import grpc
        root = open(self.ca, "rb").read()
        if not cert:
            return grpc.ssl_channel_credentials(root)
        return grpc.ssl_channel_credentials(root, open(cert[1], "rb").read(), open(cert[0], "rb").read())
