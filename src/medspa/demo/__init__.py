"""The demo clinic: a believable med spa with staff, catalogue, clients and ten weeks of bookings."""
