"""Certificates and keys for a throwaway control plane.

Owns: the cluster CA and its certificates (API server serving cert for 127.0.0.1/localhost,
client certs for the admin and each component), the front-proxy CA and client cert for the
aggregation layer, and the service-account signing key. Everything is ECDSA P-256: fast to make.
Must not: start anything or choose ports; files are written under the given directory only.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import pathlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=365)
# Names the API server answers to: loopback, plus the in-cluster service names clients verify.
SERVING_DNS_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
SERVING_IPS = ("127.0.0.1",)


@dataclasses.dataclass(frozen=True)
class KeyPair:
    """A PEM certificate file and its PEM private key file."""

    cert: pathlib.Path
    key: pathlib.Path


@dataclasses.dataclass(frozen=True)
class ClientIdentity:
    """Who a client certificate says it is: user name (CN) and groups (O)."""

    user: str
    groups: tuple[str, ...] = ()


# Each component's identity. Built-in RBAC bindings exist for the system:kube-* users;
# kwok writes node and pod status of every fake node, so it is a cluster admin.
CLIENTS: dict[str, ClientIdentity] = {
    "admin": ClientIdentity("kubeinfer-e2e-admin", ("system:masters",)),
    "kube-controller-manager": ClientIdentity("system:kube-controller-manager"),
    "kube-scheduler": ClientIdentity("system:kube-scheduler"),
    "kwok": ClientIdentity("kwok-controller", ("system:masters",)),
}


@dataclasses.dataclass(frozen=True)
class Pki:
    """Paths of everything ``generate()`` wrote."""

    directory: pathlib.Path
    ca: KeyPair
    apiserver: KeyPair
    front_proxy_ca: KeyPair
    front_proxy_client: KeyPair
    service_account_key: pathlib.Path
    service_account_public_key: pathlib.Path
    clients: dict[str, KeyPair]


@dataclasses.dataclass(frozen=True)
class _Issuer:
    name: x509.Name
    key: ec.EllipticCurvePrivateKey


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: pathlib.Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _name(common_name: str, organizations: tuple[str, ...] = ()) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _issue(
    directory: pathlib.Path,
    stem: str,
    *,
    subject: x509.Name,
    issuer: _Issuer | None,
    usage: x509.ObjectIdentifier | None = None,
    sans: list[x509.GeneralName] | None = None,
) -> tuple[KeyPair, _Issuer]:
    """Write ``<stem>.crt``/``<stem>.key``; a self-signed CA when ``issuer`` is None."""
    key = _new_key()
    now = datetime.datetime.now(datetime.UTC)
    is_ca = issuer is None
    signer = issuer or _Issuer(subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(signer.name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=not is_ca,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=is_ca,
                crl_sign=is_ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(signer.key, hashes.SHA256())
    pair = KeyPair(directory / f"{stem}.crt", directory / f"{stem}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(pair.key, key)
    return pair, _Issuer(subject, key)


def generate(directory: pathlib.Path) -> Pki:
    """Create a fresh PKI under ``directory`` (created if missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_issuer = _issue(directory, "ca", subject=_name("kubeinfer-e2e-ca"), issuer=None)
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in SERVING_DNS_NAMES]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in SERVING_IPS]
    apiserver, _ = _issue(
        directory,
        "apiserver",
        subject=_name("kube-apiserver"),
        issuer=ca_issuer,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        sans=sans,
    )
    front_proxy_ca, front_issuer = _issue(
        directory, "front-proxy-ca", subject=_name("kubeinfer-e2e-front-proxy-ca"), issuer=None
    )
    front_proxy_client, _ = _issue(
        directory,
        "front-proxy-client",
        subject=_name("front-proxy-client"),
        issuer=front_issuer,
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    clients = {
        stem: _issue(
            directory,
            f"client-{stem}",
            subject=_name(identity.user, identity.groups),
            issuer=ca_issuer,
            usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        )[0]
        for stem, identity in CLIENTS.items()
    }
    sa_key = _new_key()
    sa_private, sa_public = directory / "sa.key", directory / "sa.pub"
    _write_key(sa_private, sa_key)
    sa_public.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return Pki(
        directory=directory,
        ca=ca,
        apiserver=apiserver,
        front_proxy_ca=front_proxy_ca,
        front_proxy_client=front_proxy_client,
        service_account_key=sa_private,
        service_account_public_key=sa_public,
        clients=clients,
    )


def serving_pair(directory: pathlib.Path, stem: str, *, dns_names: tuple[str, ...]) -> KeyPair:
    """A serving certificate for ``dns_names`` and 127.0.0.1 from a CA of its own.

    Writes ``<stem>-ca.crt`` (what a client such as an APIService's ``caBundle`` trusts) and
    ``<stem>.crt``/``<stem>.key``; returns the serving pair.
    """
    directory.mkdir(parents=True, exist_ok=True)
    _, issuer = _issue(
        directory, f"{stem}-ca", subject=_name(f"kubeinfer-e2e-{stem}-ca"), issuer=None
    )
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in SERVING_IPS]
    pair, _ = _issue(
        directory,
        stem,
        subject=_name(dns_names[0]),
        issuer=issuer,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        sans=sans,
    )
    return pair
