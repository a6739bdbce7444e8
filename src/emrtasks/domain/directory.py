"""What an EMR's directory holds for us: patients, users (assignees) and phone call types."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Patient:
    emr_patient_id: str
    mrn: str
    first_name: str
    last_name: str
    dob: str
    sex: str
    phone: str

    def as_public(self) -> dict[str, str]:
        """The Cobalt-compatible patient shape."""
        return {
            "first_name": self.first_name,
            "last_name": self.last_name,
            "dob": self.dob,
            "sex": self.sex,
            "phone": self.phone,
            "mrn": self.mrn,
        }


@dataclass(frozen=True)
class User:
    id: str
    name: str
    kind: str  # provider, staff or group


@dataclass(frozen=True)
class CallType:
    id: str
    name: str
