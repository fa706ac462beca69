"""The job payload: Pythia 8 generation, a parametric detector, reconstruction, ROOT output,
and the merge into histograms, plots and a cross-section summary.

Every event's random stream is seeded from (base seed, global event index), so a campaign gives
identical histograms however it is split into jobs and wherever the jobs run.
"""
