"""A signer for contract tests: one fresh key, made the way the service makes deployment keys
(emr/signing.py), with its public JWK for a fake token endpoint to verify against."""

from emrtasks.emr import signing


class FixedSigner:
    """`emr.signing.Signer` over one key (the service's KeyRing reads them from the database)."""

    def __init__(self, alg: str = signing.RS384) -> None:
        private = signing.new_private_key(alg)
        self.kid = signing.thumbprint(private)
        self.jwk = signing.public_jwk(private, self.kid, alg)
        self.key = signing.SigningKey(self.kid, alg, signing.private_pem(private))

    async def current(self) -> signing.SigningKey:
        return self.key
