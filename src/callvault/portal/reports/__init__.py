"""Reports › Calls and the recordings list (SPEC section 5), as one feature folder.

``query``: the filters (one parser for the API's and the page's query
string), the opaque cursor and the planner of a page of calls; ``service``:
the pages of calls and recordings for a principal, and one recording;
``schemas``: the report's rows; ``http``: the JSON routes. The page
(``pages/reports.py``) calls the same service with the same filter object.
"""
