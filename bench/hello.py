"""The ceiling of the framework: Flask answering a small JSON body, nothing else."""

from flask import Flask, jsonify

app = Flask(__name__)


@app.get("/balance/<user_id>")
def balance(user_id):
    return jsonify({"user_id": user_id, "balance": 0, "updated_at": "2026-01-01T00:00:00+00:00"})
