"""Resources: locations with hours and closures, providers, rooms and devices."""
