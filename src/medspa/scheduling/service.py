"""The scheduling domain's public functions: what routes, pages, the CLI, jobs and other domains call.

The work is done in modules of one responsibility each, which nothing outside this package imports:

- `slots`: bookable starts, and the resources and reservations every decision reads first;
- `choice`: choosing the provider, room and device for one start, or the reason there is none;
- `booking`: holds and bookings, the writes that take resources;
- `lanes`: where an overbooked appointment holds its provider's time, and taking it over when freed;
- `holds`: releasing expired holds;
- `lifecycle`: reading appointments, the lifecycle steps, rescheduling;
- `waitlist`: the waitlist;
- `day_instance`: a location's day as a clinic-day instance for the optimizer (`solver/`);
- `proposals`: the optimizer's proposals in shadow mode, and applying them;
- `optimization_jobs`: optimizing a day as a job the worker runs, solving outside any transaction;
- `scores`: model scores stored on appointments;
- `no_show`: P(no-show) where the model has not served one.

No provider, room or device is ever double-booked (see `booking`). Every function flushes, never commits.
"""

from __future__ import annotations

from medspa.scheduling.booking import book_appointment, hold_slot, overbook_appointment
from medspa.scheduling.day_instance import DayInstance, build_day_instance
from medspa.scheduling.holds import release_expired_holds
from medspa.scheduling.lanes import OverbookingPlan, plan_overbooking
from medspa.scheduling.lifecycle import (
    CORRECTIONS,
    RESCHEDULABLE,
    TRANSITIONS,
    appointment_history,
    cancel_appointment,
    check_in,
    complete_appointment,
    confirm_appointment,
    confirm_hold,
    correct_status,
    deposits_requested,
    get_appointment,
    list_appointments,
    mark_no_show,
    reassign_client,
    request_deposit,
    reschedule_appointment,
    spending_by_client,
    start_service,
)
from medspa.scheduling.no_show import (
    PRIOR_NO_SHOWS,
    PRIOR_VISITS,
    no_show_probability,
    no_show_risk,
    risk_in_words,
    visit_records,
)
from medspa.scheduling.optimization_jobs import (
    get_optimization_job,
    optimize_day,
    request_optimization,
    run_optimization_job,
)
from medspa.scheduling.proposals import MAX_MOVES, StaleProposalError, apply_proposal, get_proposal
from medspa.scheduling.scores import NOT_HAPPENED, scoring_neighbourhood, store_no_show_scores
from medspa.scheduling.slots import MAX_RANGE_DAYS, find_slots
from medspa.scheduling.waitlist import (
    add_to_waitlist,
    book_from_waitlist,
    get_waitlist_entry,
    list_waitlist,
    remove_from_waitlist,
)

__all__ = [
    "CORRECTIONS",
    "MAX_MOVES",
    "MAX_RANGE_DAYS",
    "NOT_HAPPENED",
    "PRIOR_NO_SHOWS",
    "PRIOR_VISITS",
    "RESCHEDULABLE",
    "TRANSITIONS",
    "DayInstance",
    "OverbookingPlan",
    "StaleProposalError",
    "add_to_waitlist",
    "apply_proposal",
    "appointment_history",
    "book_appointment",
    "book_from_waitlist",
    "build_day_instance",
    "cancel_appointment",
    "check_in",
    "complete_appointment",
    "confirm_appointment",
    "confirm_hold",
    "correct_status",
    "deposits_requested",
    "find_slots",
    "get_appointment",
    "get_optimization_job",
    "get_proposal",
    "get_waitlist_entry",
    "hold_slot",
    "list_appointments",
    "list_waitlist",
    "mark_no_show",
    "no_show_probability",
    "no_show_risk",
    "optimize_day",
    "overbook_appointment",
    "plan_overbooking",
    "reassign_client",
    "release_expired_holds",
    "remove_from_waitlist",
    "request_deposit",
    "request_optimization",
    "reschedule_appointment",
    "risk_in_words",
    "run_optimization_job",
    "scoring_neighbourhood",
    "spending_by_client",
    "start_service",
    "store_no_show_scores",
    "visit_records",
]
