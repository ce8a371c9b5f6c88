"""The operator console's static files (HTML, CSS, JavaScript modules and the vendored
hls.js and uPlot), package data served by :mod:`sessions.http.routes_console`."""
