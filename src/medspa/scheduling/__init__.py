"""Scheduling: availability, holds and bookings, the appointment lifecycle, and the optimizer."""
