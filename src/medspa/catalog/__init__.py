"""Catalog: the services a clinic sells, with what each needs (skill, license, room, device, time)."""
