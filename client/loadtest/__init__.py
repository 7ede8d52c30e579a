"""``parley loadtest``: load a running Parley deployment and check what it delivered.

N users and M groups are created over REST (with the app's API key), connect over
``/ws`` spread over a ramp-up, and send a mix of 1:1, group and media messages, a share of
them meant to be blocked. Every frame is matched to the message it concerns; at the end the
run verifies that each deliverable message reached each of its receivers exactly once, that
no blocked message reached anyone, and that the server stored what its frames said.

- ``plan.py``: who exists, who sends what to whom (pure, seeded)
- ``tracker.py``: frames in, counters, latencies and the verification out (pure)
- ``runner.py``: the I/O: REST setup, connections, pacing, the progress bar, the summary
"""
