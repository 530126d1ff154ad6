"""Generator scorecards: realism, fidelity, engineering and downstream value (`tumorbench scorecard`)."""
