"""Write-back of Routiine-owned fields to Opportunity: diff, batch, record every result."""
