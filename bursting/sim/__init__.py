"""What-if simulator: replays a job trace through the real controller, planner, policy and
lifecycle, over a simulated HTCondor pool and simulated clouds, in simulated time."""
