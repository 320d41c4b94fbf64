"""The synthetic shapes dataset used for the offline demo detector."""
