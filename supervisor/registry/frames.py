"""The evidence frames that concern one learner, by kind, and what withdrawal does to each.

Frames are content-addressed, so one frame can be of several kinds (a kept
enrolment photo that another check copied is also that flag's evidence); what
withdrawal of consent does to a frame follows the kind that keeps it longest:

- `enrolment`: the photos the learner's templates were computed from (every
  `template_enrolled` event of the learner's chain, so also those of templates
  already deleted). Their only purpose is the template: they are deleted when
  consent is withdrawn, with the templates (and when retention deletes the
  templates), unless the same frame is also evidence of a kind below;
- `check`: the frame each check of the learner's online sessions decided on;
- `roll_call`: classroom roll-call frames the learner was found in (or, when absent,
  the first frame examined);
- `flag`: frames a flag that names the learner rests on.

Frames of the last three kinds are kept after withdrawal until their retention date
(`evidence.retention_days`): they prove checks that credited subsidised hours, or
what a fraud flag rests on, and public-funds audits and appeals need them whatever
the learner's consent to further face checks. Their hashes stay in the ledger after
deletion. Blocking functions: call them through `ctx.db`.
"""

from __future__ import annotations

from dataclasses import dataclass

from storage import Storage
from storage.types import Flag
from supervisor.ledger import classroom as cev
from supervisor.ledger import codec
from supervisor.ledger import events as ev
from supervisor.rules.flags import view

ENROLMENT = "enrolment"
CHECK = "check"
ROLL_CALL = "roll_call"
FLAG = "flag"
KINDS = (ENROLMENT, CHECK, ROLL_CALL, FLAG)
# What withdrawal of consent does to a frame of each kind.
AFTER_WITHDRAWAL = {
    ENROLMENT: "deleted",
    CHECK: "kept_until_retention",
    ROLL_CALL: "kept_until_retention",
    FLAG: "kept_until_retention",
}


@dataclass(frozen=True, slots=True)
class LearnerFrame:
    sha256: str
    kind: str  # one of KINDS
    what: str  # for a person: "enrolment", "check in session <id>", ...


def learner_frames(storage: Storage, learner_id: int) -> list[LearnerFrame]:
    """Every evidence frame that concerns the learner, once per (frame, kind)."""
    found: dict[tuple[str, str], LearnerFrame] = {}

    def add(sha: str | None, kind: str, what: str) -> None:
        if sha and (sha, kind) not in found:
            found[(sha, kind)] = LearnerFrame(sha, kind, what)

    for _, e in codec.decode_all(storage.ledger.read_chain(ev.learner_chain(learner_id))):
        if isinstance(e, ev.TemplateEnrolled):
            add(e.evidence_sha256, ENROLMENT, "enrolment")
    for t in storage.templates.for_learner(learner_id):
        add(t.evidence_sha256, ENROLMENT, "enrolment")
    for s in storage.registry.list_sessions(None, learner_id, False):
        for _, e in codec.decode_all(storage.ledger.read_chain(s.chain_id)):
            if isinstance(e, ev.CheckRecorded):
                add(e.evidence_sha256, CHECK, f"check in session {s.id}")
    learner = storage.registry.get_learner(learner_id)
    for tc in storage.classroom.list_classes(learner.institution_id):
        chain = cev.learner_class_chain(tc.id, learner_id)
        for _, e in codec.decode_all(storage.ledger.read_chain(chain)):
            if isinstance(e, cev.ClassPresence):
                add(e.evidence_sha256, ROLL_CALL, f"roll call in class {tc.id}")
    for f in learner_flags(storage, learner_id):
        for ref in view(f).evidence:
            add(ref.evidence_sha256, FLAG, f"evidence of flag {f.id} ({f.kind})")
    return sorted(found.values(), key=lambda x: (x.sha256, KINDS.index(x.kind)))


def learner_flags(storage: Storage, learner_id: int) -> list[Flag]:
    """The flags that name the learner: as the flagged learner anywhere, or as the other
    learner in a flag of their own institution (a flag raised at another institution
    is that institution's business and stays out of this one's reads)."""
    institution_id = storage.registry.get_learner(learner_id).institution_id
    return [
        f
        for f in storage.subsidy.find_flags(learner_id=learner_id)
        if f.learner_id == learner_id or f.institution_id == institution_id
    ]


def photos_to_delete(frames: list[LearnerFrame]) -> list[str]:
    """The enrolment photos withdrawal deletes: those that are no other kind of frame."""
    kept = {f.sha256 for f in frames if AFTER_WITHDRAWAL[f.kind] != "deleted"}
    return sorted({f.sha256 for f in frames if f.kind == ENROLMENT} - kept)


def enrolment_photos_to_delete(storage: Storage, learner_id: int) -> list[str]:
    """The learner's enrolment photos that no check, roll call or flag rests on: what
    goes with the templates. Ask before the templates are deleted (their rows name
    photos too)."""
    return photos_to_delete(learner_frames(storage, learner_id))
