"""The deployment's signing keys as adapters see them, and the SMART Backend Services client assertion
(RFC 7523 JWT, https://hl7.org/fhir/smart-app-launch/backend-services.html#step-3-access-token-request).

Keys are made and stored by the service (service/keys.py); an adapter only borrows a `Signer` from
`AdapterDeps`, which hands it the key to sign with now. JOSE work is done by joserfc.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

RS384 = "RS384"
ES384 = "ES384"
ALGORITHMS = (RS384, ES384)
"""What SMART Backend Services requires servers to support (RS384 and ES384)."""
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_SECONDS = 240
"""SMART: `exp` no more than five minutes after the assertion is made; a margin for clock skew."""


@dataclass(frozen=True)
class SigningKey:
    """One private key, as the signer hands it out: its id in our JWKS, its algorithm and PEM."""

    kid: str
    alg: str
    private_pem: str

    def __repr__(self) -> str:  # never the private key in a log line or a traceback
        return f"SigningKey(kid={self.kid!r}, alg={self.alg!r})"


class Signer(Protocol):
    """The key to sign with now; raises `outcomes.AdapterError` when the deployment has none."""

    async def current(self) -> SigningKey: ...


def new_private_key(alg: str) -> RSAKey | ECKey:
    """A fresh key for an algorithm: RSA 2048 for RS384, P-384 for ES384."""
    if alg == RS384:
        return RSAKey.generate_key(2048)
    if alg == ES384:
        return ECKey.generate_key("P-384")
    raise ValueError(f"unsupported algorithm {alg}; use one of {', '.join(ALGORITHMS)}")


def load_private_key(pem: str, alg: str) -> RSAKey | ECKey:
    return RSAKey.import_key(pem) if alg == RS384 else ECKey.import_key(pem)


def private_pem(key: RSAKey | ECKey) -> str:
    return key.as_pem(private=True).decode()


def thumbprint(key: RSAKey | ECKey) -> str:
    """The RFC 7638 JWK thumbprint (SHA-256, base64url): a kid that names the key itself."""
    return str(key.thumbprint())


def public_jwk(key: RSAKey | ECKey, kid: str, alg: str) -> dict[str, Any]:
    """The public half as an RFC 7517 JWK for a JWKS: kty, n/e or crv/x/y, and kid, alg, use."""
    found = dict(key.as_dict(private=False))
    return {**found, "kid": kid, "alg": alg, "use": "sig"}


def client_assertion(key: SigningKey, client_id: str, token_url: str, now: datetime) -> str:
    """A signed JWT naming the client (iss, sub) and the token endpoint (aud), good for four minutes,
    with a `jti` never used before."""
    issued = int(now.timestamp())
    header = {"alg": key.alg, "kid": key.kid, "typ": "JWT"}
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_url,
        "iat": issued,
        "exp": issued + ASSERTION_SECONDS,
        "jti": uuid.uuid4().hex,
    }
    private = load_private_key(key.private_pem, key.alg)
    return jwt.encode(header, claims, private, algorithms=[key.alg])
