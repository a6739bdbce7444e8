"""Plain words for the Link pages: a setting's name as a label, and what an EMR will ask for."""

from emrtasks.service import link

_UPPER = {"url": "URL", "id": "ID", "mrn": "MRN", "fhir": "FHIR", "api": "API", "ms": "ms", "oauth": "OAuth"}


def title(name: str) -> str:
    """`base_url` -> "Base URL", `practice_id` -> "Practice ID"."""
    parts = [_UPPER.get(p, p) for p in name.split("_") if p]
    if not parts:
        return name
    first = parts[0]
    return " ".join([first[:1].upper() + first[1:], *parts[1:]])


def asks(entry: link.CatalogueEntry) -> str:
    required = [title(f.name) for f in entry.fields if f.required]
    if entry.method == "oauth":
        where = f"You sign in at {entry.title} and approve access"
        return f"{where}; asks for: {', '.join(required)}." if required else f"{where}."
    if entry.name == "sandbox":
        return "A test EMR with sample patients and users: nothing to enter but its task rules."
    if not required:
        return "Nothing to enter."
    return f"Asks for: {', '.join(required)}."


UNAVAILABLE = "Not available here yet: this service's operator has not set up its app for this EMR."
"""For the clinic; the operator's reason (which command to run) is in the catalogue and docs."""
