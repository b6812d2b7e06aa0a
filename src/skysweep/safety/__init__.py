"""Safety decisions: pure, vectorised functions of the fleet's state and the clock."""
