"""A message for a person per refusal `reason`, for the languages other than English.

The `reason` codes are stable English identifiers that programs act on; the English
`message` of an error is the one the code raised (the most specific). In another
language the message is this table's text for the reason, translated through the
catalogue and filled with the error's details (`{name}` parameters), or the English
message when the reason has no entry here or a parameter is missing.
`tests/supervisor/test_i18n.py` holds that every reason raised in the code has one.
"""

from __future__ import annotations

from supervisor.i18n import N_

REASON_MESSAGES: dict[str, str] = {
    # -- general --------------------------------------------------------------------
    "bad_request": N_("The request is malformed."),
    "unauthenticated": N_("Please sign in: the token is missing, unknown or revoked."),
    "forbidden": N_("You are not allowed to do this."),
    "wrong_role": N_("Your role does not allow this."),
    "learner_only": N_("Only the learner, with their own sign-in, can do this."),
    "other_institution": N_("This belongs to another institution."),
    "not_your_data": N_("You may only see your own data."),
    "unknown_id": N_("Nothing was found with this id."),
    "not_found": N_("This page or record does not exist."),
    "method_not_allowed": N_("This action is not allowed here."),
    "conflict": N_("This conflicts with the current record."),
    "duplicate": N_("This already exists."),
    "invalid_state": N_("This cannot be done in the current state."),
    "invalid_input": N_("Some of what was entered is not valid; please check and try again."),
    "body_too_large": N_("The upload is too large."),
    "unavailable": N_("The service is busy; please try again shortly."),
    "storage_unavailable": N_("The service cannot reach its database; please try again later."),
    "storage_error": N_("The record could not be read or written."),
    "storage_misconfigured": N_("The service cannot use its storage."),
    "template_key_error": N_("The service cannot use its storage."),
    "schema_outdated": N_("The service is being upgraded; please try again later."),
    "ledger_busy": N_("The record is busy; please try again."),
    "chain_broken": N_(
        "This record's hash chain is broken (it was altered); nothing more is added to "
        "it, and no subsidy is paid from it. The bureau has been alerted."
    ),
    "evidence_purged": N_("The evidence frame was deleted after its retention period."),
    "http_error": N_("The request could not be served."),
    "csrf": N_("This form is out of date or did not come from this site; reload the page."),
    "rate_limited": N_("Too many requests; please wait {retry_after_s} seconds."),
    "too_many_auth_failures": N_(
        "Too many failed sign-ins from this address; please wait {retry_after_s} seconds."
    ),
    "too_many_uploads": N_("Too many photos sent; please wait {retry_after_s} seconds."),
    "naive_datetime": N_("A time must name its time zone (e.g. +08:00)."),
    "time_out_of_range": N_("The time is out of range."),
    "invalid_month": N_("The month must be written as YYYY-MM."),
    # -- images and face checks -------------------------------------------------------
    "not_an_image": N_("The file is not a photo that can be read (JPEG or PNG)."),
    "image_too_large": N_("The photo is too large; send a smaller one."),
    "no_face": N_("No face was found. Face the camera in good light."),
    "multiple_faces": N_("More than one face was found. Only you should be in the picture."),
    "low_quality": N_("The photo is not clear enough. Follow the advice and try again."),
    "mismatch": N_("The face does not match the enrolled learner."),
    "duplicate_identity": N_(
        "This face is already enrolled under another identity; the case has been flagged."
    ),
    "no_consent": N_("Biometric consent has not been given."),
    "consent_already_given": N_("Biometric consent has already been given."),
    "consent_version_outdated": N_(
        "The consent text has changed; please read and agree to version {current_version}."
    ),
    "check_deferred": N_("The check could not be run right now; please try again shortly."),
    "overloaded": N_("Face checks are busy right now; please try again shortly."),
    "bad_result": N_("The result of the check could not be read; please try again."),
    "failed": N_("The check could not be completed."),
    "wrong_frame_count": N_("A sign-in sends {wanted} pictures taken a moment apart."),
    "reenrolment_needed": N_(
        "Your enrolment photo must be taken again before face checks can continue."
    ),
    # -- learners, sessions, live study ---------------------------------------------------
    "invalid_id_number": N_("The resident ID number is not valid (check its last digit)."),
    "invalid_name": N_("The name is empty."),
    "not_enrolled": N_("The learner is not enrolled (in this course, or has no enrolled face)."),
    "already_enrolled": N_("The learner is already enrolled in this course."),
    "duplicate_learner": N_("A learner is listed twice."),
    "session_ended": N_("This study session has already ended."),
    "session_already_open": N_("A study session is already open for this learner."),
    "in_person_session": N_("This session is attended in person, not online."),
    "not_live": N_("This session is not supervised live."),
    "no_pending_check": N_("No check is waiting for these pictures."),
    "too_many_frames": N_("Too many pictures in one upload."),
    "alternative_not_approved": N_("In-person attendance has not been approved."),
    "no_request": N_("The learner has not asked for another way to verify attendance."),
    "not_in_person": N_("This session is not attended in person."),
    "not_staff": N_("Only institution staff may confirm presence."),
    # -- institutions, catalogue, subsidy -------------------------------------------------
    "institution_suspended": N_("The institution is suspended; training cannot start."),
    "institution_expelled": N_("The institution has been expelled from the subsidy scheme."),
    "invalid_credit_code": N_("The unified social credit code is not valid."),
    "reason_required": N_("Please give a reason."),
    "same_status": N_("The institution already has this status."),
    "cap_required": N_("A per-hour subsidy needs a cap."),
    "no_rules": N_("The course has no catalogue rules yet."),
    "rules_frozen": N_("The rules are published and can no longer be changed."),
    "not_published": N_("Only published rules can be withdrawn."),
    "before_birth": N_(
        "A learner cannot belong to a group before the birth date of their ID number."
    ),
    "future_date": N_("The date cannot be in the future."),
    "invalid_period": N_("The period must end after it starts."),
    "invalid_status": N_("A decision either confirms or dismisses."),
    "decided_by_inspector": N_("An inspector has decided this flag; it cannot be overturned."),
    "duplicate_credit_code": N_("Another institution already has this unified social credit code."),
    "same_credit_code": N_("The institution already has this credit code."),
    "not_named_by_flag": N_("This flag does not concern your institution's learners."),
    "empty_statement": N_("The statement is empty."),
    "signed_form_required": N_("Consent taken in person needs the learner's signed form."),
    "form_not_expected": N_("A learner gives consent on their own page, without a form."),
    # -- classes (classroom training and assessments) -------------------------------------
    "course_not_classroom": N_("Classes are only for classroom or blended courses."),
    "invalid_schedule": N_("The class schedule is not valid (it must end after it starts)."),
    "learner_other_institution": N_("The learner belongs to another institution."),
    "already_on_roster": N_("The learner is already on the roster."),
    "roster_too_large": N_("The roster is too large."),
    "roster_frozen": N_("The roster cannot change once supervision has started."),
    "invalid_camera_url": N_("The camera address is not valid."),
    "file_source_refused": N_("Video files cannot be used as cameras here."),
    "camera_address_refused": N_(
        "The camera's address is not allowed: cameras must be on this server's camera networks."
    ),
    "camera_port_refused": N_("The camera's port is one of this service's own ports."),
    "camera_host_unresolved": N_("The camera's host name cannot be found from this server."),
    "duplicate_camera": N_("The class already has this camera."),
    "too_many_cameras": N_("The class has too many cameras."),
    "class_running": N_("Not while supervision of the class is running."),
    "empty_roster": N_("A class cannot be filed with an empty roster."),
    "filing_closed": N_("Filing is closed once supervision has started."),
    "not_filed": N_("The class has not been filed yet."),
    "filing_outdated": N_("The roster changed since the filing; please file again."),
    "no_cameras": N_("The class has no camera."),
    "class_over": N_("The class's schedule has ended."),
    "too_early": N_("It is too early to start supervision of this class."),
    "already_running": N_("Supervision of the class is already running."),
    "not_running": N_("Supervision of the class is not running."),
    # -- roster import (learners from a spreadsheet) -------------------------------------
    "roster_file_too_large": N_("The file is too large; at most {limit_bytes} bytes."),
    "roster_not_a_spreadsheet": N_(
        "The file is not a spreadsheet. Upload an Excel file (.xlsx) or a CSV file."
    ),
    "roster_empty": N_("The file has no learner rows."),
    "roster_too_many_rows": N_("The file has more than {limit} learner rows; split it."),
    "roster_missing_column": N_(
        "The first row must name the columns 姓名 (name) and 身份证号 (ID number)."
    ),
    "roster_has_errors": N_(
        "{errors} rows of the file have problems, so nothing was imported. Correct them, "
        "or import only the clean rows."
    ),
    "roster_import_interrupted": N_(
        "Row {row} could not be registered (registered meanwhile elsewhere?); the "
        "{registered} learners of earlier rows were registered."
    ),
    "class_other_institution": N_("The class belongs to another institution."),
    "course_other_institution": N_("The course belongs to another institution."),
    # -- records the bureau's statistics need ---------------------------------------------
    "invalid_division_code": N_(
        "The administrative-division code is not valid: six digits, a province that "
        "exists, and a province's own code ends in 0000."
    ),
    "invalid_occupation_code": N_(
        "The occupation code is not valid: X-XX-XX-XX with a major category from 1 to 8."
    ),
    "invalid_skill_level": N_("The skill level is from 1 (senior technician) to 5."),
    "invalid_licence_number": N_("The licence number is missing or too long."),
    "invalid_legal_representative": N_("The legal representative is missing or too long."),
    "invalid_address": N_("The address is missing or too long."),
    "invalid_reason": N_("The reason is too long."),
    "same_profile": N_("The institution's profile is already recorded so."),
    "no_profile": N_("No profile is recorded for this institution yet."),
    "rules_published": N_(
        "The course's rules are published: only the bureau can change its classification."
    ),
    "same_classification": N_("The course is already classified so."),
    "not_classified": N_("The course has no occupation code and skill level yet."),
    "incomplete_classification": N_("Give both the occupation code and the skill level."),
    "classification_mismatch": N_(
        "The course was re-classified after its rules were set; set the rules again."
    ),
    "invalid_group": N_("This is not one of the key groups of the policy."),
    "invalid_date": N_("The date is not a valid date (YYYY-MM-DD)."),
    "invalid_source": N_("The source is missing or too long."),
    "group_already_held": N_("The learner is in this group already."),
    "group_not_held": N_("The learner is not in this group."),
    "assessment_not_passed": N_(
        "A certificate needs a passed assessment of the learner in this course."
    ),
    "level_mismatch": N_("The certificate's level must be the course's skill level."),
    "before_assessment": N_("A certificate cannot be dated before its assessment."),
    "invalid_certificate_number": N_("The certificate number is missing or too long."),
    "invalid_issuing_body": N_("The issuing body is missing or too long."),
    "duplicate_certificate_number": N_("A certificate with this number exists already."),
    "already_certified": N_("This assessment result has a certificate already."),
    # -- inspection -----------------------------------------------------------------------
    "bad_hash": N_("A frame is named by 64 lowercase hexadecimal characters."),
    "no_seal": N_("No seal has been made yet."),
    "bad_period": N_("The period must end after it starts."),
    "bad_sample_size": N_("The sample size is out of range."),
    "bad_seed": N_("A seed is 1 to 128 characters."),
    "bad_verdict": N_("The verdict is regular or irregular."),
    "note_required": N_("An irregular verdict needs a note."),
    "note_too_long": N_("The note is at most 2000 characters."),
    "not_in_draw": N_("That session is not in this draw."),
    # -- claim review ---------------------------------------------------------------------
    "claim_overlaps": N_(
        "Claim {claim_id} already covers part of this period for a course of this claim."
    ),
    "nothing_to_claim": N_("No learner of the institution is eligible in this period."),
    "unknown_claim": N_("There is no such claim."),
    "unknown_course": N_("This is not a course of the institution."),
    "unknown_institution": N_("There is no such institution."),
    "unknown_draw": N_("There is no such draw."),
    "unknown_export": N_("There is no such payment export."),
    "unknown_objection": N_("There is no such objection on this claim."),
    "bad_rate": N_("The sampling rate is a fraction from 0 to 1."),
    "nothing_to_draw": N_("No submitted claim of this period awaits a draw."),
    "bad_claim_verdict": N_("The verdict is verified or irregular."),
    "claim_not_sampled": N_("Only a claim sampled by a draw is verified."),
    "already_verified": N_("The claim has been verified already."),
    "already_decided": N_("This has been decided already."),
    "not_in_claim": N_("That learner is not on this claim."),
    "bad_decision": N_("The decision is approved or rejected."),
    "claim_not_drawn": N_("A claim is approved only after a draw of its period has included it."),
    "period_not_ended": N_("The period has not ended yet; claim it once it is over."),
    "claim_not_verified": N_("A sampled claim can be approved only after its verification."),
    "nothing_to_approve": N_("No line of the claim is left to approve; reject it instead."),
    "not_on_notice": N_("The claim is not on public notice."),
    "notice_closed": N_("The public notice of this claim has closed."),
    "statement_too_long": N_("The statement is at most 2000 characters."),
    "uphold_needs_note": N_("Upholding an objection needs a note."),
    "too_many_posts": N_("Too many submissions from this address; please try again later."),
    "notice_open": N_(
        "The claim is still on public notice; it can be paid once the notice closes."
    ),
    "objection_open": N_("An objection to the claim is open; it blocks payment until decided."),
    "claim_not_approved": N_("The claim is not approved."),
    "already_paid": N_("The claim has been paid already."),
    "nothing_to_pay": N_("No claim is ready to pay."),
    "duplicate_claim": N_("A claim is listed twice."),
    # -- appeals --------------------------------------------------------------------------
    "not_your_subject": N_("You can only appeal what concerns you."),
    "unknown_subject": N_("What the appeal names does not exist."),
    "wrong_subject": N_(
        "Name a flag by its number, or a check or roll call by its record and number."
    ),
    "nothing_to_appeal": N_("This does not count against you: there is nothing to appeal."),
    "appeal_exists": N_("This already has an open or upheld appeal."),
    "unknown_appeal": N_("There is no such appeal."),
    "appeal_decided": N_("This appeal has been decided already."),
    "appeal_note_required": N_("A decision on an appeal needs a note."),
    "appeal_note_too_long": N_("The note is at most 2000 characters."),
    # -- WebRTC ---------------------------------------------------------------------------
    "invalid_sdp": N_("The video connection could not be set up (invalid offer)."),
    "sdp_too_large": N_("The video connection could not be set up (offer too large)."),
    "no_video": N_("The connection carries no video."),
    "peer_exists": N_("This session already has a video connection."),
    "too_many_peers": N_("Too many video connections right now; please try again shortly."),
    "ice_failed": N_("The video connection failed; check the network and try again."),
    "not_connected": N_("The video connection is not open."),
    "capture_error": N_("The camera's pictures could not be read."),
    # -- the dispatch report ------------------------------------------------------------
    "invalid_report_period": N_("The period must be written as YYYY-MM, YYYY-Qn or YYYY."),
    "invalid_region": N_("The region must be a six-digit administrative division code."),
    "already_closed": N_("This report is already closed; a change is a correction."),
    "not_closed": N_("This report is not closed yet; close it before correcting it."),
    "period_not_started": N_("This period has not started yet."),
    "nothing_changed": N_("The report computed now is the same as the closed one."),
    "unknown_version": N_("This report has no such version."),
    "stored_copy_altered": N_(
        "The kept copy of this report does not match the hash recorded in the ledger."
    ),
    "dispatch_copy_lost": N_(
        "This version of the report was closed but its copy was not kept, and it cannot "
        "be computed again to the same figures; ask an inspector to check the ledger."
    ),
}
